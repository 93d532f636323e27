package model

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/params"
)

// ReadRuntime reads "<type>/<nickname>"'s runtime document from the parameter store.
func ReadRuntime(ctx context.Context, store params.Store, prefix, ref string) (map[string]any, error) {
	t, n, _ := strings.Cut(ref, "/")
	p, err := store.Get(ctx, RuntimeParam(prefix, t, n))
	if errors.Is(err, params.ErrNotFound) {
		return nil, fmt.Errorf("%s has no runtime yet (%s): deploy it first", ref, RuntimeParam(prefix, t, n))
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(p.Value))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: runtime is not a JSON object: %w", ref, err)
	}
	return m, nil
}
