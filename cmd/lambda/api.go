package main

import (
	"context"
	"fmt"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/app"
)

// stageAPI is the KARMA_STAGE of the API function: Karma's HTTP API (shared/api, the same handler
// karma serve serves) behind an API Gateway HTTP API whose routes require IAM authorization; the
// caller's ARN, from the request context, is the actor of every write. Proposals are committed as
// KARMA_GIT_WRITE says (default none: POST /request-change answers 409). A request outlasting
// the function's time is answered a 504 timeout problem before its deadline (api.LambdaHandler).
const stageAPI = "api"

// setupAPI builds the API over the App's stores; nothing is fetched or connected until a
// request needs it, so the function starts fast.
func setupAPI(ctx context.Context, a *app.App) (apiGatewayHandler, error) {
	h, _, err := a.API(ctx, app.APIOptions{Auth: api.IAM{}, Log: a.Log()})
	if err != nil {
		return nil, fmt.Errorf("stage api: %w", err)
	}
	return api.LambdaHandler(h), nil
}
