fn main() {
    axolotl_codegen::build::generate_with_default("../../../system.xml", "warden.elf");
}
