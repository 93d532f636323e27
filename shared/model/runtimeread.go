package model

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/params"
)

// ReadRuntime reads "<type>/<nickname>"'s runtime document from the parameter store; a
// SecureString runtime is sensitive.
func ReadRuntime(ctx context.Context, store params.Store, prefix, ref string) (Runtime, error) {
	t, n, _ := strings.Cut(ref, "/")
	p, err := store.Get(ctx, RuntimeParam(prefix, t, n))
	if errors.Is(err, params.ErrNotFound) {
		return Runtime{}, fmt.Errorf("%s has no runtime yet (%s): deploy it first", ref, RuntimeParam(prefix, t, n))
	}
	if err != nil {
		return Runtime{}, err
	}
	return RuntimeFrom(ref, p)
}

// RuntimeFrom decodes parameter p, a version of ref's runtime document; a SecureString runtime
// is sensitive.
func RuntimeFrom(ref string, p params.Parameter) (Runtime, error) {
	dec := json.NewDecoder(strings.NewReader(p.Value))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		// The decoder's error quotes no value, so a SecureString's content stays out of it.
		return Runtime{}, fmt.Errorf("%s: runtime is not a JSON object: %w", ref, err)
	}
	return Runtime{Values: m, Sensitive: p.Type == params.TypeSecureString}, nil
}

// InterpolateFromStore substitutes config's references with the upstream runtimes in store
// (ReadRuntime): values taken from a SecureString runtime are named in Interpolated.Sensitive,
// for Terraform to get as sensitive variables and no file to hold.
func InterpolateFromStore(ctx context.Context, store params.Store, prefix string, config json.RawMessage) (Interpolated, error) {
	return InterpolateRuntimes(config, func(ref string) (Runtime, error) {
		return ReadRuntime(ctx, store, prefix, ref)
	})
}
