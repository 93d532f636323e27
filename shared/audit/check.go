package audit

import "fmt"

// ChainCheck holds the link checks every Log's Verify makes, in one place. Feed it a chain's
// stored records in seq order (Next), then the chain's stored head (End). The first failure is
// a *TamperError naming the chain and the seq where the chain breaks:
//
//   - the record's slot (the seq it is stored under) is not the previous one plus one: the seq
//     in between is "missing" (the first record must be seq 1);
//   - the record's own Seq or Chain field differs from where it is stored;
//   - its PrevHash is not the previous record's Hash (a record inserted, removed or reordered);
//   - its Hash is not ComputeHash(PrevHash) of its content (a record edited);
//   - at the end: the stored head is missing although records exist, names a later seq (the
//     newest records were removed), an earlier one (a record beyond the head) or another hash.
type ChainCheck struct {
	chain string
	last  Record // the last record that checked out: Seq 0, Hash "" before the first
}

// NewChainCheck starts checking chain.
func NewChainCheck(chain string) *ChainCheck { return &ChainCheck{chain: chain} }

// Next checks the record stored at slot; after an error the check is over.
func (c *ChainCheck) Next(slot int64, r Record) error {
	want := c.last.Seq + 1
	switch {
	case slot < want:
		return c.broken(want, fmt.Sprintf("missing (a record is stored at seq %d instead)", slot))
	case slot > want:
		return c.broken(want, "missing")
	case r.Seq != slot || r.Chain != c.chain:
		return c.broken(slot, "the record's seq or chain field differs from where it is stored")
	case r.PrevHash != c.last.Hash:
		return c.broken(slot, "prev_hash is not the previous record's hash")
	case r.Hash != r.ComputeHash(r.PrevHash):
		return c.broken(slot, "hash does not match the record's content")
	}
	c.last = r
	return nil
}

// End checks the chain's stored head (nil: none is stored) against the last record.
func (c *ChainCheck) End(stored *Head) error {
	last := c.last
	switch {
	case stored == nil && last.Seq > 0:
		return c.broken(last.Seq, "the chain's head is missing")
	case stored == nil:
		return nil
	case stored.Seq > last.Seq:
		return c.broken(last.Seq+1, fmt.Sprintf("missing (the chain's head says the last record is seq %d)", stored.Seq))
	case stored.Seq < last.Seq:
		return c.broken(stored.Seq+1, fmt.Sprintf("beyond the chain's head (seq %d)", stored.Seq))
	case stored.Hash != last.Hash:
		return c.broken(last.Seq, "hash differs from the one in the chain's head")
	}
	return nil
}

// Last is the head of the records checked so far.
func (c *ChainCheck) Last() Head { return Head{Chain: c.chain, Seq: c.last.Seq, Hash: c.last.Hash} }

func (c *ChainCheck) broken(seq int64, what string) *TamperError {
	return &TamperError{Chain: c.chain, Seq: seq, What: what}
}
