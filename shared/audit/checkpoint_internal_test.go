package audit

import (
	"strings"
	"testing"
)

// Parts stay under maxPartBytes, keep every head in order, and an empty checkpoint is one part.
func TestSplitHeads(t *testing.T) {
	if parts := splitHeads(nil); len(parts) != 1 || len(parts[0]) != 0 {
		t.Errorf("splitHeads(nil) = %v, want one empty part", parts)
	}
	var heads []Head
	for i := range 3000 {
		heads = append(heads, Head{Chain: strings.Repeat("c", 100) + string(rune('a'+i%26)), Seq: int64(i + 1), Hash: strings.Repeat("f", 64)})
	}
	parts := splitHeads(heads)
	if len(parts) < 2 {
		t.Fatalf("%d heads of ~230 bytes in %d part(s), want several", len(heads), len(parts))
	}
	var joined []Head
	for i, p := range parts {
		size := 0
		for _, h := range p {
			size += len(h.Chain) + len(h.Hash) + 64
		}
		if size > maxPartBytes {
			t.Errorf("part %d: %d bytes, over %d", i+1, size, maxPartBytes)
		}
		joined = append(joined, p...)
	}
	if len(joined) != len(heads) || joined[0] != heads[0] || joined[len(joined)-1] != heads[len(heads)-1] {
		t.Errorf("parts do not join back into the heads")
	}
}
