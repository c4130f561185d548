fn main() {
    axolotl_codegen::build::generate("echo.elf");
}
