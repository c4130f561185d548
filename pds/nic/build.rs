fn main() {
    axolotl_codegen::build::generate("nic.elf");
}
