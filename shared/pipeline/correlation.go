package pipeline

import (
	"context"

	"github.com/usekarma/karma/shared/message"
)

// Correlation makes every output a consequence of its input: same correlation id, causation id
// = input id, and the input's actor and env unless the handler set them.
func Correlation() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			out, err := next(ctx, in)
			for i := range out {
				out[i].CorrelationID = in.CorrelationID
				if out[i].CausationID == "" {
					out[i].CausationID = in.ID
				}
				if out[i].Actor.Kind == "" {
					out[i].Actor = in.Actor
				}
				if out[i].Env == "" {
					out[i].Env = in.Env
				}
			}
			return out, err
		}
	}
}
