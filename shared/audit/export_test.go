package audit

import "time"

// SetIndexLag replaces the waits for a witnessed checkpoint not found yet; it returns a func
// restoring them.
func SetIndexLag(waits ...time.Duration) func() {
	old := indexLag
	indexLag = waits
	return func() { indexLag = old }
}
