fn main() {
    axolotl_codegen::build::generate("tcp.elf");
}
