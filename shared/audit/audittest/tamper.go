package audittest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
)

// Tamperer alters a log's storage behind its back, as someone with write access to the table
// or the file can. Each method fails t when the storage refuses.
type Tamperer interface {
	// Put stores r at seq r.Seq of chain r.Chain exactly as given (PrevHash and Hash included),
	// replacing the record stored there. A record with the same message id stored at another
	// seq may stay or go: the suite always overwrites or deletes the slot a record leaves.
	Put(t *testing.T, r audit.Record)
	// Delete removes the record stored at seq of chain, and nothing else.
	Delete(t *testing.T, chain string, seq int64)
	// SetHead stores h as its chain's head; h.Seq 0 deletes the head.
	SetHead(t *testing.T, h audit.Head)
	// DropChain removes every trace of chain: records, head, listing, message id markers.
	DropChain(t *testing.T, chain string)
}

// tampering is one way of altering a chain "v" of five records (and, for some, a chain "w" of
// three), and the broken links ("<chain>@<seq>") it must be found at.
type tampering struct {
	name  string
	alter func(t *testing.T, f fixture, tp Tamperer, v []audit.Record)
	want  []string
}

// Found by the chain itself: Verify and VerifyLog without a checkpoint.
var foundByVerify = []tampering{
	{"edited middle record", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) { tp.Put(t, edited(v[2])) }, []string{"v@3"}},
	{"edited newest record", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) { tp.Put(t, edited(v[4])) }, []string{"v@5"}},
	{"edited actor", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) {
		r := v[1]
		r.Actor = "mallory"
		tp.Put(t, r)
	}, []string{"v@2"}},
	{"removed first record", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) { tp.Delete(t, v[0].Chain, 1) }, []string{"v@1"}},
	{"removed middle record", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) { tp.Delete(t, v[0].Chain, 3) }, []string{"v@3"}},
	{"removed newest record", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) { tp.Delete(t, v[0].Chain, 5) }, []string{"v@5"}},
	{"removed head", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) {
		tp.SetHead(t, audit.Head{Chain: v[0].Chain})
	}, []string{"v@5"}},
	{"removed every record, head kept", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) {
		for _, r := range v {
			tp.Delete(t, r.Chain, r.Seq)
		}
	}, []string{"v@1"}},
	// A forged record correctly linked to seq 2, the later ones moved up and the head with them:
	// the link from the forged record to the old seq 3 (now 4) breaks.
	{"inserted record, linked", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) {
		insertAfter(t, tp, v, 2, forged(f, v[0].Chain, "forged", 3, v[1].Hash))
	}, []string{"v@4"}},
	{"inserted record, unlinked", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) {
		insertAfter(t, tp, v, 2, forged(f, v[0].Chain, "forged", 3, "not a hash"))
	}, []string{"v@3"}},
	{"inserted newest record, head not moved", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) {
		tp.Put(t, forged(f, v[0].Chain, "forged", 6, v[4].Hash))
	}, []string{"v@6"}},
	{"reordered records", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) { swap(t, tp, v[1], v[2]) }, []string{"v@2"}},
	{"reordered newest records", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) { swap(t, tp, v[3], v[4]) }, []string{"v@4"}},
}

// Leave a log that checks out on its own: found only against a checkpoint taken before.
var foundByCheckpoint = []tampering{
	{"removed newest record, head rolled back", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) {
		truncate(t, tp, v, 4)
	}, []string{"v@5"}},
	{"removed newest records, head rolled back, appended again", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) {
		truncate(t, tp, v, 3)
		f.appendN(t, 3, f.rec("later-1", "v", 10*time.Second), f.rec("later-2", "v", 11*time.Second), f.rec("later-3", "v", 12*time.Second))
	}, []string{"v@5"}}, // the chain is longer again, but seq 5 is another record
	{"dropped chain", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) { tp.DropChain(t, v[0].Chain) }, []string{"v@1"}},
	{"truncated every chain", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) {
		truncate(t, tp, v, 1)
		truncate(t, tp, f.stored(t, f.p+"/w", 3), 1)
	}, []string{"v@2", "w@2"}},
	{"rewritten from scratch", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) { rewrite(t, f, tp, v[0].Chain, 5) }, []string{"v@5"}},
	{"rewritten from scratch, longer", func(t *testing.T, f fixture, tp Tamperer, v []audit.Record) { rewrite(t, f, tp, v[0].Chain, 7) }, []string{"v@5"}},
}

func testTamperVerify(t *testing.T, f fixture, tp Tamperer) {
	for i, tc := range foundByVerify {
		t.Run(tc.name, func(t *testing.T) {
			f := fixture{log: f.log, p: fmt.Sprintf("%s-%d", f.p, i)}
			v := f.build(t, "v", 5)
			f.build(t, "bystander", 2)
			f.expectBroken(t, nil)
			tc.alter(t, f, tp, v)
			f.expectBroken(t, nil, tc.want...)
			te := audit.Broken(f.log.Verify(t.Context(), f.p+"/v"))
			if te == nil || fmt.Sprintf("v@%d", te.Seq) != tc.want[0] {
				t.Errorf("Verify = %v, want an *audit.TamperError at %s", te, tc.want[0])
			}
		})
	}
}

func testTamperCheckpoint(t *testing.T, f fixture, tp Tamperer) {
	for i, tc := range foundByCheckpoint {
		t.Run(tc.name, func(t *testing.T) {
			f := fixture{log: f.log, p: fmt.Sprintf("%s-%d", f.p, i)}
			v := f.build(t, "v", 5)
			f.build(t, "w", 3)
			cp := f.checkpoint(t)
			tc.alter(t, f, tp, v)
			f.expectBroken(t, nil) // the chain alone cannot tell
			loaded, err := audit.LoadCheckpoint(t.Context(), f.log, cp.Digest)
			if err != nil {
				t.Fatalf("LoadCheckpoint: %v", err)
			}
			f.expectBroken(t, &loaded, tc.want...)
		})
	}
}

// edited is r with another body and the same hashes.
func edited(r audit.Record) audit.Record {
	r.Body = json.RawMessage(`{"forged":true}`)
	return r
}

// forged is a new record at seq of chain after prev, hashed as an attacker would.
func forged(f fixture, chain, id string, seq int64, prev string) audit.Record {
	r := f.rec(id, "unused", time.Duration(seq)*time.Second)
	r.Chain, r.Seq, r.PrevHash = chain, seq, prev
	r.Hash = r.ComputeHash(prev)
	r.Appended = time.Now().UnixNano() // stamped as the log stamps its records: write access can
	return r
}

// insertAfter moves the records after seq up by one, puts r at seq+1 and moves the head.
func insertAfter(t *testing.T, tp Tamperer, v []audit.Record, seq int64, r audit.Record) {
	for i := len(v) - 1; i >= int(seq); i-- {
		moved := v[i]
		moved.Seq++
		tp.Put(t, moved)
	}
	tp.Put(t, r)
	last := v[len(v)-1]
	tp.SetHead(t, audit.Head{Chain: last.Chain, Seq: last.Seq + 1, Hash: last.Hash})
}

// swap exchanges the places of a and b, each keeping its own content and hashes.
func swap(t *testing.T, tp Tamperer, a, b audit.Record) {
	a.Seq, b.Seq = b.Seq, a.Seq
	tp.Put(t, a)
	tp.Put(t, b)
}

// truncate deletes the records of v after seq and rolls the head back to seq.
func truncate(t *testing.T, tp Tamperer, v []audit.Record, seq int64) {
	for _, r := range v[seq:] {
		tp.Delete(t, r.Chain, r.Seq)
	}
	tp.SetHead(t, audit.Head{Chain: v[0].Chain, Seq: seq, Hash: v[seq-1].Hash})
}

// rewrite replaces chain by n forged records, consistently linked, and moves the head.
func rewrite(t *testing.T, f fixture, tp Tamperer, chain string, n int64) {
	prev := ""
	for seq := int64(1); seq <= n; seq++ {
		r := forged(f, chain, fmt.Sprintf("rewritten-%d", seq), seq, prev)
		tp.Put(t, r)
		prev = r.Hash
	}
	tp.SetHead(t, audit.Head{Chain: chain, Seq: n, Hash: prev})
}
