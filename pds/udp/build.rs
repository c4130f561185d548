fn main() {
    axolotl_codegen::build::generate("udp.elf");
}
