fn main() {
    axolotl_codegen::build::generate_with_default(
        "../../../storage/store-bench/store-bench.xml",
        "store-bench.elf",
    );
}
