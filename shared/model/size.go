package model

import (
	"fmt"

	"github.com/usekarma/karma/shared/params"
)

// checkSizes reports every component whose resolved config Parameter Store would refuse to hold
// (params.MaxValueBytes): it could be neither published nor deployed, so it is an error at build
// time, naming the environment file, the size and the limit. The size is the resolved config's,
// every layer included, as it is published.
func checkSizes(repo *Repo) Diagnostics {
	var out Diagnostics
	for _, c := range repo.Components {
		if c.Broken || len(c.Resolved) == 0 {
			continue
		}
		name := ConfigParam(repo.Settings.Prefix, c.Type, c.Nickname)
		if params.CheckSize(name, len(c.Resolved), "") == nil {
			continue
		}
		out = append(out, Diagnostic{Severity: SevError, Code: CodeTooLarge, File: c.File(), Component: c.ID(),
			Message: fmt.Sprintf("the resolved config is %d bytes; Parameter Store holds at most %d (%s, Advanced tier)",
				len(c.Resolved), params.MaxValueBytes, name)})
	}
	return out
}
