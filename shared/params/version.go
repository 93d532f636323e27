package params

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrVersionGone is matched (errors.Is) by GetVersion's error when the parameter exists but no
// longer keeps the version asked for (Parameter Store keeps the last 100).
var ErrVersionGone = errors.New("params: version no longer kept")

// ErrRecreated is matched (errors.Is) by GetWritten's error when the version asked for, by its
// number and the time it was written, is no longer the parameter's: the parameter was deleted
// and created again since (its versions start again at 1), and the version of that number, if
// any, is another write. The error matches ErrVersionGone too: the version asked for is gone.
var ErrRecreated = errors.New("params: the parameter was re-created since")

// RecreatedError says which version was asked for, written when, and what the parameter holds
// instead: the version of that number, or its current version when it has not reached that
// number again (Found), written at FoundAt. It holds no value.
type RecreatedError struct {
	Name      string
	Version   int64     // the version asked for
	WrittenAt time.Time // when the version asked for was written
	Found     int64
	FoundAt   time.Time
}

func recreated(name string, v int64, writtenAt time.Time, found Parameter) *RecreatedError {
	return &RecreatedError{Name: name, Version: v, WrittenAt: writtenAt, Found: found.Version, FoundAt: found.LastModified}
}

func (e *RecreatedError) Error() string {
	if e.Found == e.Version {
		return fmt.Sprintf("version %d of %s was written at %s, the change names %s: the parameter was re-created since",
			e.Version, e.Name, writeTime(e.FoundAt), writeTime(e.WrittenAt))
	}
	return fmt.Sprintf("%s is at version %d, written at %s, after the version %d the change names (written at %s): the parameter was re-created since",
		e.Name, e.Found, writeTime(e.FoundAt), e.Version, writeTime(e.WrittenAt))
}

// Unwrap makes errors.Is(err, ErrRecreated) and errors.Is(err, ErrVersionGone) true.
func (e *RecreatedError) Unwrap() []error { return []error{ErrRecreated, ErrVersionGone} }

// writeTime is a version's time of writing as keys name it: UTC, milliseconds.
func writeTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// sameWrite reports whether two times of writing are one to the millisecond (Parameter Store's
// precision; message.SameWriteTime).
func sameWrite(a, b time.Time) bool {
	return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
}

// GetVersion returns version v of parameter name: the current one when it is v (nearly always:
// one read), else from the store's history (a Historian; both stores are). v == 0 asks for the
// current version. A change names the version it is about; reading "the current value" instead
// would deploy whatever was written since under that change's name.
//
// The number alone does not tell a parameter deleted and created again (its versions start
// again at 1) from the one before: GetWritten does, when the time of writing is known.
func GetVersion(ctx context.Context, s Store, name string, v int64) (Parameter, error) {
	return GetWritten(ctx, s, name, v, time.Time{})
}

// GetWritten is GetVersion of the version v written at writtenAt: a version of that number
// written at another time (to the millisecond) is of the parameter created again since, and is
// refused with a *RecreatedError (ErrRecreated), as is a parameter that has not reached v again
// and whose current version was written after writtenAt. A zero writtenAt (a change made before
// the time was carried), or a store that says no time for the version, leaves the number to
// decide, as GetVersion.
func GetWritten(ctx context.Context, s Store, name string, v int64, writtenAt time.Time) (Parameter, error) {
	p, err := s.Get(ctx, name)
	if err != nil || v == 0 {
		return p, err
	}
	if p.Version != v {
		if v > p.Version && !writtenAt.IsZero() && !p.LastModified.IsZero() &&
			p.LastModified.Truncate(time.Millisecond).After(writtenAt.Truncate(time.Millisecond)) {
			// versions only grow: a number not reached again, under a version written later
			return Parameter{}, recreated(name, v, writtenAt, p)
		}
		h, ok := s.(Historian)
		if !ok {
			return Parameter{}, fmt.Errorf("%s is at version %d, version %d is asked for, and this store keeps no history: %w", name, p.Version, v, ErrVersionGone)
		}
		versions, err := h.History(ctx, name)
		if err != nil {
			return Parameter{}, err
		}
		found := false
		for _, old := range versions {
			if old.Version == v {
				p, found = old, true
				break
			}
		}
		if !found {
			return Parameter{}, fmt.Errorf("%s no longer has version %d (it is at %d; Parameter Store keeps the last 100): %w", name, v, p.Version, ErrVersionGone)
		}
	}
	if !writtenAt.IsZero() && !p.LastModified.IsZero() && !sameWrite(p.LastModified, writtenAt) {
		return Parameter{}, recreated(name, v, writtenAt, p)
	}
	return p, nil
}
