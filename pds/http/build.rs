fn main() {
    axolotl_codegen::build::generate("http.elf");
}
