package configrepo_test

import (
	"errors"
	"testing"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
)

func TestCheckProposal(t *testing.T) {
	o := gittest.NewOrigin(t, "config.git", files("3"))
	src := newSource(t, o.Bare)
	head := o.Head(t)

	chk, err := src.CheckProposal(ctx, head, "prod", "vpc", "core", []byte(`{"az_count": 4}`))
	if err != nil {
		t.Fatal(err)
	}
	if chk.ID() != "prod/vpc/core" || chk.File != "iac/prod/vpc/core/config.json" || chk.Base != head {
		t.Errorf("checked %+v", chk)
	}
	// subnet/app references vpc/core: it is in the impact, one wave later.
	if len(chk.Impact.Affected) != 2 || chk.Impact.Affected[1].ID != "prod/subnet/app" || len(chk.Impact.Waves) != 2 {
		t.Errorf("impact = %+v", chk.Impact)
	}

	_, err = src.CheckProposal(ctx, head, "prod", "vpc", "nope", []byte(`{}`))
	if !errors.Is(err, configrepo.ErrNoSuchComponent) {
		t.Errorf("unknown component: %v", err)
	}
	_, err = src.CheckProposal(ctx, head, "prod", "vpc", "core", []byte(`{ "az_count":3 }`))
	if !errors.Is(err, configrepo.ErrUnchanged) {
		t.Errorf("unchanged proposal: %v", err)
	}
	_, err = src.CheckProposal(ctx, head, "prod", "vpc", "core", []byte(`{"az_count": "many"}`))
	var invalid *configrepo.InvalidProposalError
	if !errors.As(err, &invalid) || invalid.File != "iac/prod/vpc/core/config.json" || len(invalid.Diagnostics) != 1 || invalid.Diagnostics[0].Pointer != "/az_count" {
		t.Fatalf("schema error: %v", err)
	}
}
