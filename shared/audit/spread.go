package audit

import (
	"fmt"
	"hash/fnv"
)

// SpreadChains is how many chains SpreadChain spreads the entries of one kind over.
const SpreadChains = 16

// SpreadChain is the chain of an entry that concerns no component or change — a refused request
// ("security"), an ignored push ("triggers") — with message id id: one of SpreadChains chains
// "<kind>/00" … "<kind>/15", by a hash of id. A chain takes one append at a time (each moves its
// head), so one chain for every refused request is where concurrent appenders (a burst of bad
// tokens, many Lambda instances) cancel each other until some give up and their entries are
// lost; spread, they rarely meet. Which chain is of no meaning to readers: they ask by type,
// actor, time or correlation, and Verify checks every chain.
func SpreadChain(kind, id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("%s/%02d", kind, h.Sum32()%SpreadChains)
}
