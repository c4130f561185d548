fn main() {
    axolotl_codegen::build::generate("warden.elf");
}
