fn main() {
    axolotl_codegen::build::generate("monitor.elf");
}
