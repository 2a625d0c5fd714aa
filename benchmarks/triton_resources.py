#!/usr/bin/env python
"""Resources of every Triton kernel variant of medloss, compiled ahead of time for an H100 (sm_90) without a GPU.

    python benchmarks/triton_resources.py                  # every variant (a few minutes on 2 cores)
    python benchmarks/triton_resources.py --quick          # one variant per kernel (what the test runs)
    python benchmarks/triton_resources.py --only "C=4 fp32 focal" --json out.json

For each variant (kernel x logits dtype x class bucket x voxel term x target kind, N a multiple of 16 or not) it
prints what the cubin Triton built for it holds (``cuobjdump``): registers per thread, spill stores (the ``STL``
instructions of the SASS and their bytes) and stack frame; the shared memory Triton reserved; and how the global
loads are issued (``ld.global`` vector width in the PTX: v4/v2 are vectorised, v1 scalar). Exits 1 when any
variant spills.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile

os.environ["TRITON_INTERPRET"] = "0"  # compile for real: the interpreter's kernels cannot be lowered
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from medloss.backends import triton as api  # noqa: E402
from medloss.backends.options import TableOptions  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
PTR = {torch.float32: "*fp32", torch.float64: "*fp64", torch.bfloat16: "*bf16", torch.float16: "*fp16",
       torch.int64: "*i64", torch.uint8: "*u8", torch.int32: "*i32"}
SOFTMAX_TERMS = {"none": 0, "ce": 1, "focal": 2, "explog": 3, "wasserstein": 4}
SIGMOID_TERMS = {"none": 0, "bce": 1, "focal": 2}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp64": torch.float64}


def _cuobjdump(*args: str) -> str:
    """Run the cuobjdump that ships with this Triton (next to its ptxas) and return its output."""
    from triton.backends.nvidia.compiler import get_ptxas

    tool = os.path.join(os.path.dirname(get_ptxas(TARGET.arch).path), "cuobjdump")
    return subprocess.run([tool, *args], capture_output=True, text=True, check=True).stdout


def compile_variant(fn, types: dict, constexprs: dict, aligned: bool, launch: dict | None = None) -> dict:
    """Compile ``fn`` with argument ``types`` (pointer/scalar type strings), ``constexprs`` and the launch's compile
    options ``launch`` (:func:`medloss.backends.triton.launch_options`; None: Triton's defaults); pointers are
    16-byte aligned (torch allocations are), integer sizes divisible by 16 only when ``aligned``. The figures are
    read from the cubin Triton built (its own ptxas flags, e.g. Triton 3.9's ``--regAllocOptLevel=2``), so they
    are those of the code a launch runs."""
    signature, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in constexprs:
            signature[name] = "constexpr"
        else:
            signature[name] = types.get(name, "i32")
            if signature[name].startswith("*") or (aligned and name == "N"):
                attrs[(i,)] = [["tt.divisibility", 16]]
    kernel = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=TARGET, options=launch)
    ptx = kernel.asm["ptx"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.cubin")
        with open(path, "wb") as fh:
            fh.write(kernel.asm["cubin"])
        usage, sass = _cuobjdump("-res-usage", path), _cuobjdump("-sass", path)
    regs = re.search(r"REG:(\d+)", usage)
    stack = re.search(r"STACK:(\d+)", usage)
    # spill stores: the STL instructions of the SASS (Triton itself allocates no local memory), bytes by width
    stores = re.findall(r"\bSTL(?:\.(64|128|U8|S8|U16|S16))?\b", sass)
    width = {"": 4, "64": 8, "128": 16, "U8": 1, "S8": 1, "U16": 2, "S16": 2}
    loads = re.findall(r"ld\.global(?:\.[a-z]+)*?(\.v[248])?\.[busf]\d+", ptx)
    widths = sorted({w[2:] if w else "1" for w in loads}, key=int, reverse=True)
    return {"regs": int(regs.group(1)) if regs else None, "spill_bytes": sum(width[w] for w in stores),
            "stack_bytes": int(stack.group(1)) if stack else 0, "local_stores": len(stores),
            "shared": kernel.metadata.shared, "load_widths": "/".join(f"v{w}" for w in widths) or "-"}


def variants(quick: bool):
    """(name, kernel, types, constexprs, compile options) of every variant (``quick``: the first of each kernel)."""
    soft = api.kernels("softmax")
    sig = api.kernels("sigmoid")
    tl = soft.tl
    classes = (4, 14) if not quick else (4,)
    dtypes = DTYPES if not quick else {"fp32": torch.float32}
    for (dname, dtype), c, (term, voxel), labels in itertools.product(
            dtypes.items(), classes, SOFTMAX_TERMS.items(), (torch.int64, torch.uint8)):
        if quick and (voxel not in (0, 1) or labels != torch.int64):
            continue
        matrix = ((0.0, 1.0), (1.0, 0.0)) if term == "wasserstein" else None  # only its presence matters here
        options = TableOptions(voxel_term=[None, "ce", "focal", "explog", "wasserstein"][voxel], matrix=matrix)
        block_n, block_c = api.blocks(c, options, dtype)
        acc = tl.float64 if dtype == torch.float64 else tl.float32
        ctype = "*fp64" if dtype == torch.float64 else "*fp32"
        common = dict(HAS_IGNORE=True, FLOAT_LABELS=False, SQUARED=False, VOXEL=voxel, BLOCK_N=block_n,
                      BLOCK_C=block_c, ACC=acc)
        types = dict(x_ptr=PTR[dtype], y_ptr=PTR[labels], part_ptr=ctype, status_ptr="*i32", par_ptr=ctype,
                     grad_ptr=PTR[dtype], k_ptr=ctype, a_ptr=ctype, u_ptr=ctype, m_ptr=ctype)
        name = f"softmax C={c} {dname} {term} {str(labels)[6:]}"
        yield name + " forward", soft._forward_kernel, types, common, api.launch_options(c, options, dtype, True)
        yield (name + " backward", soft._backward_kernel, types,
               dict(common, HAS_K=True, HAS_A=True, HAS_U=voxel > 0, SCALE=False),
               api.launch_options(c, options, dtype, False))
        if voxel in (0, 1) and labels == torch.int64:  # a fused loss's backward: coefficients times grad_output
            yield (name + " fused backward", soft._backward_kernel, dict(types, gout_ptr=PTR[dtype]),
                   dict(common, HAS_K=True, HAS_A=True, HAS_U=voxel > 0, SCALE=True),
                   api.launch_options(c, options, dtype, False))
    for (dname, dtype), c, (term, voxel), dense in itertools.product(
            dtypes.items(), classes, SIGMOID_TERMS.items(), (False, True)):
        if quick and (voxel != 2 or dense):
            continue
        options = TableOptions(activation="sigmoid", voxel_term=[None, "bce", "focal"][voxel])
        block_n, block_c = api.blocks(c, options, dtype)
        acc = tl.float64 if dtype == torch.float64 else tl.float32
        ctype = "*fp64" if dtype == torch.float64 else "*fp32"
        common = dict(DENSE=dense, HAS_IGNORE=not dense, FLOAT_LABELS=False, SQUARED=False, VOXEL=voxel,
                      BLOCK_N=block_n, BLOCK_C=block_c, ACC=acc)
        types = dict(x_ptr=PTR[dtype], t_ptr=PTR[dtype] if dense else "*i64", part_ptr=ctype, status_ptr="*i32",
                     par_ptr=ctype, grad_ptr=PTR[dtype], k_ptr=ctype, a_ptr=ctype, upos_ptr=ctype, uneg_ptr=ctype)
        name = f"sigmoid C={c} {dname} {term} {'dense' if dense else 'labels'}"
        yield name + " forward", sig._forward_kernel, types, common, api.launch_options(c, options, dtype, True)
        yield (name + " backward", sig._backward_kernel, types,
               dict(common, HAS_K=True, HAS_A=True, HAS_P=voxel > 0, HAS_N=voxel > 0, SCALE=False),
               api.launch_options(c, options, dtype, False))
        if voxel == 1:  # BCEDice fused: coefficients times grad_output
            yield (name + " fused backward", sig._backward_kernel, dict(types, gout_ptr=PTR[dtype]),
                   dict(common, HAS_K=True, HAS_A=True, HAS_P=True, HAS_N=True, SCALE=True),
                   api.launch_options(c, options, dtype, False))
    for c, dname in itertools.product(classes, ("fp32", "fp64") if not quick else ("fp32",)):
        block_c = api.blocks(c)[1]
        ctype = f"*{dname}"
        yield (f"finalize C={c} {dname}", soft._finalize_kernel, dict(part_ptr=ctype, status_ptr="*i32", out_ptr=ctype),
               dict(BLOCK_C=block_c, CHUNK=max(1, min(64, 512 // block_c))), None)  # launched with Triton's defaults
    yield from _loss_variants(classes, quick)


#: the fused losses' finalize kernel: name -> its constexprs (medloss.backends.triton.fused)
LOSSES = {"dice": dict(REGION=1, VOXEL=0, BATCH=False, FIRST=0, MEAN=True, FOCAL=False),
          "tversky-focal batch nobg": dict(REGION=2, VOXEL=0, BATCH=True, FIRST=1, MEAN=True, FOCAL=True),
          "gdl": dict(REGION=3, VOXEL=0, BATCH=False, FIRST=0, MEAN=True, FOCAL=False),
          "focal sum": dict(REGION=0, VOXEL=2, BATCH=False, FIRST=0, MEAN=False, FOCAL=False),
          "dicece": dict(REGION=1, VOXEL=1, BATCH=False, FIRST=0, MEAN=True, FOCAL=False),
          "bcedice": dict(REGION=1, VOXEL=3, BATCH=False, FIRST=0, MEAN=True, FOCAL=False)}


def _loss_variants(classes, quick: bool):
    tl = api.kernels().tl
    for c, dname, (loss, flags) in itertools.product(classes, ("fp32", "fp64") if not quick else ("fp32",),
                                                     LOSSES.items()):
        if quick and loss != "dicece":
            continue
        block_c = api.blocks(c)[1]
        ctype = f"*{dname}"
        yield (f"loss C={c} {dname} {loss}", api.kernels("loss")._loss_kernel,
               dict(part_ptr=ctype, status_ptr="*i32", par_ptr=ctype, scratch_ptr=ctype, loss_ptr=ctype),
               dict(flags, W_TYPE=0, EMPTY_PENALIZE=True, BLOCK_C=block_c, CHUNK=max(1, min(64, 512 // block_c)),
                    ACC=tl.float64 if dname == "fp64" else tl.float32), None)  # launched with Triton's defaults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one variant per kernel")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="only the variants whose name holds NAME (repeatable), e.g. 'fp32 focal'")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    print(f"triton {triton.__version__}, target sm_90")
    print(f"{'variant':44} {'N%16':>5} {'regs':>4} {'spill B':>7} {'stack B':>7} {'STL':>8} {'smem B':>6}  loads")
    rows, spills = [], 0
    for name, fn, types, constexprs, launch in variants(args.quick):
        if args.only and not any(part in name for part in args.only):
            continue
        for aligned in (True, False):
            if name.startswith(("finalize", "loss")) and not aligned:
                continue
            r = compile_variant(fn, types, constexprs, aligned, launch)
            r.update(variant=name, n_multiple_of_16=aligned, maxnreg=(launch or {}).get("maxnreg"))
            rows.append(r)
            spills += bool(r["spill_bytes"] or r["local_stores"])
            print(f"{name:44} {'yes' if aligned else 'no':>5} {r['regs']:4d} {r['spill_bytes']:7d} "
                  f"{r['stack_bytes']:7d} {r['local_stores']:8d} {r['shared']:6d}  {r['load_widths']}", flush=True)
    print(f"{len(rows)} variants, {spills} with spills")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"triton": triton.__version__, "rows": rows}, fh, indent=1)
    return 1 if spills else 0


if __name__ == "__main__":
    raise SystemExit(main())
