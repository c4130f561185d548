fn main() {
    axolotl_codegen::build::generate("store.elf");
}
