package pipeline

import "context"

type hooksKey struct{}

type hooks struct{ fns []func(context.Context) error }

// AfterPublish registers fn to run once the runtime has published the current message's outputs
// (and before it acknowledges the message). Outside a runtime it does nothing.
func AfterPublish(ctx context.Context, fn func(context.Context) error) {
	if h, ok := ctx.Value(hooksKey{}).(*hooks); ok {
		h.fns = append(h.fns, fn)
	}
}

// withHooks returns a context collecting AfterPublish hooks.
func withHooks(ctx context.Context) (context.Context, *hooks) {
	h := &hooks{}
	return context.WithValue(ctx, hooksKey{}, h), h
}

func (h *hooks) run(ctx context.Context) error {
	for _, fn := range h.fns {
		if err := fn(ctx); err != nil {
			return err
		}
	}
	return nil
}
