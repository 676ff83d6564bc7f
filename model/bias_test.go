package model

import (
	"fmt"
	"testing"
)

// TestBiasLRStepsTheBiases checks that bias_lr is the biases' step, in the
// plain ranking step and in the nested widths' one: at 0 they stay 0 while
// the rows learn; halving it (at the same emb_lr) gives the chosen
// items' biases smaller steps.
func TestBiasLRStepsTheBiases(t *testing.T) {
	for _, nested := range [][]int{nil, {16, 32}} {
		t.Run(fmt.Sprintf("nested=%v", nested), func(t *testing.T) {
			run := func(biasLR float64) *DQN {
				cfg := DefaultDQN()
				cfg.Rows, cfg.BiasLR, cfg.Nested = 32, biasLR, nested
				d := newDQN(t, cfg)
				learnAll(t, d, clicks(0, 600, 40, func(i int) int { return i % 30 }))
				return d
			}
			zero, half, full := run(0), run(0.025), run(0.05)
			for i, b := range zero.bias {
				if b != 0 {
					t.Fatalf("bias_lr 0: item %d has bias %v", i, b)
				}
			}
			if zero.Checksum() == half.Checksum() {
				t.Fatal("bias_lr 0 and 0.025 learned the same model")
			}
			var h, f float64
			for i := range half.bias {
				h += float64(abs32(half.bias[i]))
				f += float64(abs32(full.bias[i]))
			}
			if !(h > 0 && h < f) {
				t.Fatalf("total |bias| %v at bias_lr 0.025, %v at 0.05: want 0 < the first < the second", h, f)
			}
		})
	}
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}
