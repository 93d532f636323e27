package audit

import (
	"errors"
	"fmt"
)

// ErrTampered is matched (errors.Is) by every *TamperError.
var ErrTampered = errors.New("audit: chain does not verify")

// TamperError is a broken link: the first record of a chain that does not check out, and what
// is wrong with it. Seq 0 concerns the chain as a whole (e.g. missing from the chain list).
type TamperError struct {
	Chain string `json:"chain"`
	Seq   int64  `json:"seq"`
	What  string `json:"what"`
}

func (e *TamperError) Error() string { return ErrTampered.Error() + ": " + e.Link() }

// Link names the broken link: "chain <chain>: seq <n>: <what>".
func (e *TamperError) Link() string {
	if e.Seq == 0 {
		return fmt.Sprintf("chain %s: %s", e.Chain, e.What)
	}
	return fmt.Sprintf("chain %s: seq %d: %s", e.Chain, e.Seq, e.What)
}

// Unwrap makes errors.Is(err, ErrTampered) true.
func (e *TamperError) Unwrap() error { return ErrTampered }

// Permanent: retrying cannot repair a tampered chain (pipeline.Classify dead-letters it).
func (e *TamperError) Permanent() bool { return true }

// Broken returns the *TamperError in err's chain, or nil.
func Broken(err error) *TamperError {
	var te *TamperError
	if errors.As(err, &te) {
		return te
	}
	return nil
}
