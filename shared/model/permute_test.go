package model

import (
	"math/rand/v2"
	"testing"
)

func TestPermute(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 100} {
		for range 20 {
			order := rand.Perm(n)
			units := make([]unit, n)
			for i := range units {
				units[i].pos = i
			}
			permute(units, order)
			for k := range units {
				if units[k].pos != order[k] {
					t.Fatalf("n=%d order %v: position %d holds unit %d, want %d", n, order, k, units[k].pos, order[k])
				}
			}
		}
	}
}
