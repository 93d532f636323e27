package embedded

// transientError marks an error worth retrying (the file busy or locked a moment): Transient()
// is what pipeline.IsTransient looks for with errors.As, so this package marks its errors
// without importing the runtime.
type transientError struct{ err error }

func (e *transientError) Error() string   { return e.err.Error() }
func (e *transientError) Unwrap() error   { return e.err }
func (e *transientError) Transient() bool { return true }

// transient marks err as worth retrying.
func transient(err error) error { return &transientError{err: err} }
