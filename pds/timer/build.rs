fn main() {
    axolotl_codegen::build::generate("timer.elf");
}
