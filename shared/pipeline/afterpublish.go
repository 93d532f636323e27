package pipeline

import "context"

type hooksKey struct{}

type hooks struct {
	fns     []func(context.Context) error
	abandon []func(context.Context) // when the outputs of a handler that succeeded are not finished
}

// AfterPublish registers fn to run once the runtime has published the current message's outputs
// (and before it acknowledges the message). Outside a runtime it does nothing.
func AfterPublish(ctx context.Context, fn func(context.Context) error) {
	if h, ok := ctx.Value(hooksKey{}).(*hooks); ok {
		h.fns = append(h.fns, fn)
	}
}

// onAbandon registers fn to run when the runtime gives up on finishing the current message's
// outputs after its handler succeeded (the publish or a hook failed: the message is retried).
// The Idempotency middleware gives its claim back this way. Outside a runtime it does nothing.
func onAbandon(ctx context.Context, fn func(context.Context)) {
	if h, ok := ctx.Value(hooksKey{}).(*hooks); ok {
		h.abandon = append(h.abandon, fn)
	}
}

// abandoned runs the onAbandon functions.
func (h *hooks) abandoned(ctx context.Context) {
	for _, fn := range h.abandon {
		fn(ctx)
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
