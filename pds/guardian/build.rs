fn main() {
    axolotl_codegen::build::generate("guardian.elf");
}
