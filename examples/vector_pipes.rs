//! Which 512-bit instructions share the FMA pipes on this core, and at what rate.
//!
//! `cargo run --release --example vector_pipes` times, for each instruction the step's loops use,
//! six independent copies alone and then beside eight independent `vfmadd231ps`, in cycles of
//! the core clock (`diffexp::bench::core_ghz`). An instruction that adds about as many cycles as
//! it has copies competes with the FMAs for their pipes; one that adds none runs beside them.
//! `benches/port_budget.sh` counts µops with the model these figures support: on Intel cores
//! with two 512-bit ports (0 and 5) every vector operation competes; on AMD Zen 4, whose FMA pipes
//! take one 512-bit operation per cycle, the FMAs, multiplies, rotates, two-source permutes and
//! mask tests do; shifts by immediate or per-lane counts, blends and plain logic do not. (Ternary
//! logic is the odd one: alone it issues more than one per cycle, so it can run elsewhere, yet
//! beside the FMAs it slows them by most of its own time.)
//!
//! x86-64 with AVX-512 only; elsewhere it says so and exits.

#[cfg(target_arch = "x86_64")]
mod probe {
    use std::arch::asm;
    use std::time::Instant;

    // The asm blocks use only zmm0..15 (declared clobbered through their xmm parts) and save and
    // restore k1, so that no AVX-512 target feature, and no newer compiler than the crate's MSRV,
    // is needed; the CPU is checked at run time.

    /// Six copies of `op` writing zmm8..zmm13 (`tail` holds the sources, zmm14 and zmm15).
    macro_rules! six {
        ($op:literal, $tail:literal) => {
            concat!(
                $op, " zmm8", $tail, "\n", $op, " zmm9", $tail, "\n", $op, " zmm10", $tail, "\n", $op, " zmm11", $tail,
                "\n", $op, " zmm12", $tail, "\n", $op, " zmm13", $tail, "\n"
            )
        };
    }
    /// Eight independent FMAs on zmm0..zmm7.
    macro_rules! fmas {
        () => {
            concat!(
                "vfmadd231ps zmm0, zmm14, zmm15\n",
                "vfmadd231ps zmm1, zmm14, zmm15\n",
                "vfmadd231ps zmm2, zmm14, zmm15\n",
                "vfmadd231ps zmm3, zmm14, zmm15\n",
                "vfmadd231ps zmm4, zmm14, zmm15\n",
                "vfmadd231ps zmm5, zmm14, zmm15\n",
                "vfmadd231ps zmm6, zmm14, zmm15\n",
                "vfmadd231ps zmm7, zmm14, zmm15\n"
            )
        };
    }
    /// Six mask tests (a mask register destination, so not [`six`]).
    macro_rules! mask_tests {
        () => {
            concat!(
                "vptestnmd k1, zmm14, zmm15\n",
                "vptestnmd k1, zmm14, zmm15\n",
                "vptestnmd k1, zmm14, zmm15\n",
                "vptestnmd k1, zmm14, zmm15\n",
                "vptestnmd k1, zmm14, zmm15\n",
                "vptestnmd k1, zmm14, zmm15\n"
            )
        };
    }
    /// Seconds for `n` runs of `body` in a loop, with zmm14 = zmm15 = 1.0 in every lane.
    macro_rules! timed {
        ($n:expr, $body:expr) => {{
            let one = 1.0f32;
            let t = Instant::now();
            // SAFETY: reads `one`; writes only registers declared clobbered, and k1, which it
            // restores. The caller checked that the CPU has AVX-512F/DQ/BW.
            unsafe {
                asm!(
                    "kmovw {k:e}, k1",
                    "vbroadcastss zmm14, dword ptr [{one}]",
                    "vbroadcastss zmm15, dword ptr [{one}]",
                    "2:",
                    $body,
                    "dec {n}",
                    "jnz 2b",
                    "kmovw k1, {k:e}",
                    "vzeroupper",
                    one = in(reg) &one,
                    n = inout(reg) $n => _,
                    k = out(reg) _,
                    out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                    out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                    out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                    out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                    options(nostack, readonly),
                );
            }
            t.elapsed().as_secs_f64()
        }};
    }
    /// (name, seconds for the op alone, beside the FMAs, the FMAs alone) per op.
    macro_rules! rows {
        ($n:expr; $(($op:literal, $tail:literal)),* $(,)?) => {{
            let fma = timed!($n, fmas!());
            vec![$(($op, timed!($n, six!($op, $tail)), timed!($n, concat!(fmas!(), six!($op, $tail))), fma)),*]
        }};
    }

    pub fn run() {
        if !(is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512bw"))
        {
            println!("vector_pipes: this CPU has no AVX-512; nothing to measure");
            return;
        }
        let ghz = diffexp::bench::core_ghz().expect("x86-64 has the multiply-chain clock");
        let n = 4_000_000u64;
        let mut rows = rows!(n;
            ("vfmadd231ps", ", zmm14, zmm15"),
            ("vmulps", ", zmm14, zmm15"),
            ("vaddps", ", zmm14, zmm15"),
            ("vaddpd", ", zmm14, zmm15"),
            ("vpternlogq", ", zmm14, zmm15, 0x96"),
            ("vprolq", ", zmm14, 23"),
            ("vpsllq", ", zmm14, 17"),
            ("vpsllvq", ", zmm14, zmm15"),
            ("vpsrlvq", ", zmm14, zmm15"),
            ("vpaddq", ", zmm14, zmm15"),
            ("vpxorq", ", zmm14, zmm15"),
            ("vpandd", ", zmm14, zmm15"),
            ("vpermt2d", ", zmm14, zmm15"),
            ("vblendmps", " {{k1}}, zmm14, zmm15"),
            ("vpblendmd", " {{k1}}, zmm14, zmm15"),
            ("vcvtudq2ps", ", zmm14"),
            ("vcvtdq2ps", ", zmm14"),
            ("vgetexpps", ", zmm14"),
            ("vcvtps2pd", ", ymm14"),
            ("vsqrtps", ", zmm14"),
        );
        rows.push(("vptestnmd", timed!(n, mask_tests!()), timed!(n, concat!(fmas!(), mask_tests!())), rows[0].3));
        let cyc = |s: f64| s * ghz * 1e9 / n as f64;
        println!("core clock {ghz:.2} GHz; cycles per block (six copies of the instruction, eight FMAs)");
        println!(
            "{:>12} {:>7} {:>14} {:>13} {:>17}",
            "instruction", "alone", "beside FMAs", "FMAs alone", "on the FMA pipes"
        );
        for (name, alone, beside, fma) in rows {
            let (alone, beside, fma) = (cyc(alone), cyc(beside), cyc(fma));
            // Beside the FMAs, an instruction on other pipes adds nothing to the longer of the two
            // alone; one on the FMA pipes adds its own time.
            let shared = (beside - fma.max(alone)) / alone.min(fma);
            println!("{name:>12} {alone:>7.2} {beside:>14.2} {fma:>13.2} {:>16.0}%", 100.0 * shared.clamp(0.0, 1.0));
        }
        // A second reading: a change since the first means the figures above mix two clocks.
        println!("core clock after: {:.2} GHz", diffexp::bench::core_ghz().unwrap_or(f64::NAN));
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    probe::run();
    #[cfg(not(target_arch = "x86_64"))]
    println!("vector_pipes: x86-64 only");
}
