fn main() {
    axolotl_codegen::build::generate("producer.elf");
}
