fn main() {
    axolotl_codegen::build::generate("filter.elf");
}
