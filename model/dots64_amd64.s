//go:build !purego

#include "textflag.h"

// func dots64AVX2(e *float32, q *float32, out *float32, n int)
//
// out[i] = Σ_j e[64i+j]·q[j] for i < n: q's 64 values stay in Y8-Y15,
// each row is eight fused multiply-adds into two accumulators, then a
// horizontal sum.
TEXT ·dots64AVX2(SB), NOSPLIT, $0-32
	MOVQ e+0(FP), SI
	MOVQ q+8(FP), DX
	MOVQ out+16(FP), DI
	MOVQ n+24(FP), CX
	TESTQ CX, CX
	JE done
	VMOVUPS 0(DX), Y8
	VMOVUPS 32(DX), Y9
	VMOVUPS 64(DX), Y10
	VMOVUPS 96(DX), Y11
	VMOVUPS 128(DX), Y12
	VMOVUPS 160(DX), Y13
	VMOVUPS 192(DX), Y14
	VMOVUPS 224(DX), Y15

loop:
	VMULPS 0(SI), Y8, Y0
	VMULPS 32(SI), Y9, Y1
	VFMADD231PS 64(SI), Y10, Y0
	VFMADD231PS 96(SI), Y11, Y1
	VFMADD231PS 128(SI), Y12, Y0
	VFMADD231PS 160(SI), Y13, Y1
	VFMADD231PS 192(SI), Y14, Y0
	VFMADD231PS 224(SI), Y15, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VMOVSS X0, 0(DI)
	ADDQ $256, SI
	ADDQ $4, DI
	DECQ CX
	JNZ loop
	VZEROUPPER

done:
	RET
