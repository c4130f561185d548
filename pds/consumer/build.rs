fn main() {
    axolotl_codegen::build::generate("consumer.elf");
}
