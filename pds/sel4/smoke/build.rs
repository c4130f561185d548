fn main() {
    axolotl_codegen::build::generate_from("../smoke.xml", "smoke.elf");
}
