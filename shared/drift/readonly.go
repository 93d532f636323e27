package drift

import "context"

// ReadOnly is the drift check as a read: Check compares and marks what earlier runs already
// recorded, and publishes nothing (GET /drift). Recording is the Recorder's, on a schedule or by
// `karma drift`.
type ReadOnly struct {
	Checker *Checker
	Records Records
}

// Check runs the comparisons and marks the drifts recorded before.
func (r ReadOnly) Check(ctx context.Context, o Options) (*Report, error) {
	rep, err := r.Checker.Check(ctx, o)
	if err != nil {
		return nil, err
	}
	return rep, MarkRecorded(ctx, r.Records, rep)
}
