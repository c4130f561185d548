fn main() {
    axolotl_codegen::build::generate("ip.elf");
}
