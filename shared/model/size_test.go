package model_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
)

// A resolved config Parameter Store would refuse is a build error naming the component's file,
// the size and the limit; one that fits (even above the Standard tier's 4 KB) is not.
func TestResolvedConfigTooLarge(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", params.MaxValueBytes) // with the key and braces: over the limit
	fits := strings.Repeat("y", params.StandardTierLimit+100)
	res := build(t, map[string]string{
		// The size is the resolved config's: the base layer and the env file together.
		"iac/_base/app/big/config.json": fmt.Sprintf(`{"blob":%q}`, big[:5000]),
		"iac/dev/app/big/config.json":   fmt.Sprintf(`{"more":%q}`, big[5000:]),
		"iac/dev/app/fits/config.json":  fmt.Sprintf(`{"blob":%q}`, fits),
	})
	errs := res.Diagnostics.Errors()
	if len(errs) != 1 {
		t.Fatalf("diagnostics %v, want one error for dev/app/big", res.Diagnostics)
	}
	d := errs[0]
	var size int
	for _, c := range res.Repo.Components {
		if c.ID() == "dev/app/big" {
			size = len(c.Resolved)
		}
	}
	if d.Code != model.CodeTooLarge || d.File != "iac/dev/app/big/config.json" || d.Component != "dev/app/big" ||
		!strings.Contains(d.Message, fmt.Sprint(size)) || !strings.Contains(d.Message, fmt.Sprint(params.MaxValueBytes)) {
		t.Errorf("diagnostic %q (code %s, component %s), want %s naming the file, its %d bytes and the %d-byte limit",
			d, d.Code, d.Component, model.CodeTooLarge, size, params.MaxValueBytes)
	}
}
