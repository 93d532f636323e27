// Package references resolves a component's references to upstream runtimes for the plan and
// apply stages, with its errors sorted for pipeline.Classify.
package references

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
)

// Interpolate is model.InterpolateFromStore with its error sorted: what the config or the
// runtimes it references get wrong (a runtime not published, a key it does not have, a runtime
// that is not JSON) is permanent — the deployment fails; a read Parameter Store failed to answer
// (throttled, timed out, unreachable) is left as the store reported it, which Classify retries
// unless the store marked it permanent.
func Interpolate(ctx context.Context, store params.Store, prefix string, config json.RawMessage) (model.Interpolated, error) {
	r := &reads{Store: store}
	cfg, err := model.InterpolateFromStore(ctx, r, prefix, config)
	if err != nil && !r.failed {
		return cfg, pipeline.Permanent(err)
	}
	return cfg, err
}

// reads is a store that notes whether a Get failed otherwise than "not found".
type reads struct {
	params.Store
	failed bool
}

func (r *reads) Get(ctx context.Context, name string) (params.Parameter, error) {
	p, err := r.Store.Get(ctx, name)
	if err != nil && !errors.Is(err, params.ErrNotFound) {
		r.failed = true
	}
	return p, err
}
