package model

import (
	"sort"
	"strings"
)

// ChangedFile is one file a commit changed, relative to the config repository.
type ChangedFile struct {
	Path    string
	Removed bool
}

// ComponentRef names a component of an environment: "<type>/<nickname>".
type ComponentRef struct{ Type, Nickname string }

// DeployableChanges keeps the changed files Karma deploys from — configs under iac/, account
// environments, and the modules folder when modulesDir is given — and lists the components
// whose config.json was removed (destroys). Both are sorted.
func DeployableChanges(changed []ChangedFile, modulesDir string) (files []string, removed []ComponentRef) {
	for _, f := range changed {
		p := strings.TrimPrefix(f.Path, "./")
		parts := strings.Split(p, "/")
		switch {
		case len(parts) == 5 && parts[0] == "iac" && parts[4] == "config.json" && f.Removed && parts[1] != BaseEnv &&
			validType(parts[2]) && validNickname(parts[3]):
			removed = append(removed, ComponentRef{Type: parts[2], Nickname: parts[3]})
			files = append(files, p)
		case parts[0] == "iac" && strings.HasSuffix(p, ".json"),
			parts[0] == "account_environments",
			modulesDir != "" && strings.HasPrefix(p, strings.TrimSuffix(modulesDir, "/")+"/"):
			files = append(files, p)
		}
	}
	sort.Strings(files)
	sort.Slice(removed, func(i, j int) bool {
		return removed[i].Type+"/"+removed[i].Nickname < removed[j].Type+"/"+removed[j].Nickname
	})
	return files, removed
}
