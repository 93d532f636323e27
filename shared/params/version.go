package params

import (
	"context"
	"errors"
	"fmt"
)

// ErrVersionGone is matched (errors.Is) by GetVersion's error when the parameter exists but no
// longer keeps the version asked for (Parameter Store keeps the last 100).
var ErrVersionGone = errors.New("params: version no longer kept")

// GetVersion returns version v of parameter name: the current one when it is v (nearly always:
// one read), else from the store's history (a Historian; both stores are). v == 0 asks for the
// current version. A change names the version it is about; reading "the current value" instead
// would deploy whatever was written since under that change's name.
func GetVersion(ctx context.Context, s Store, name string, v int64) (Parameter, error) {
	p, err := s.Get(ctx, name)
	if err != nil || v == 0 || p.Version == v {
		return p, err
	}
	h, ok := s.(Historian)
	if !ok {
		return Parameter{}, fmt.Errorf("%s is at version %d, version %d is asked for, and this store keeps no history: %w", name, p.Version, v, ErrVersionGone)
	}
	versions, err := h.History(ctx, name)
	if err != nil {
		return Parameter{}, err
	}
	for _, old := range versions {
		if old.Version == v {
			return old, nil
		}
	}
	return Parameter{}, fmt.Errorf("%s no longer has version %d (it is at %d; Parameter Store keeps the last 100): %w", name, v, p.Version, ErrVersionGone)
}
