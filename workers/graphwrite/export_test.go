package graphwrite

import "time"

// SetLockLease shortens the lock's lease (and so its renewal period) for a test.
func SetLockLease(d time.Duration) (restore func()) {
	old := lockLease
	lockLease = d
	return func() { lockLease = old }
}
