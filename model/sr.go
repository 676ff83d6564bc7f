package model

// SRConfig configures SR.
type SRConfig struct {
	// Window is the longest gap of a rule: an item followed by another
	// within Window of the user's items (gap g = 1 for the next one) makes
	// the rule first → second, weighted 1/g. It is also how many of the
	// user's recent items score candidates.
	Window int
	// Decay weighs the rules of the user's k-th most recent item by
	// Decay^k when scoring (k = 0: the last item).
	Decay float64
	Shared
}

// SR is sequential rules (Ludewig and Jannach, "Evaluation of
// session-based recommendation algorithms", 2018), learned online: the
// directional evidence of what follows what. When a user consumes b, each
// of the user's last Window items a, g items back, adds 1/g to the rule
// a → b. A user's candidate b scores Σ_k Decay^k · rule(a_k → b) over the
// user's recent items a_k, the most recent first (k = 0). Ties (such as a
// user with no history) fall back to popularity.
type SR struct {
	baseline
	cfg   SRConfig
	rules cooc // rules.nbrs[a]: the items that followed a, with weights
}

// NewSR returns an empty SR.
func NewSR(cfg SRConfig) *SR {
	m := &SR{cfg: cfg}
	m.baseline = baseline{name: "sr", topN: cfg.TopN, s: m, items: NewVocab(),
		users: newUsers(cfg.Shared, cfg.Window, nil)}
	return m
}

// learn implements scorer.
func (m *SR) learn(x int32, u *UserState) { m.rules.addRules(x, u.Recent) }

// score implements scorer.
func (m *SR) score(u *UserState, out []float64) { m.rules.scoreRules(u.Recent, m.cfg.Decay, out) }

// params implements scorer: the rules kept plus the item counts.
func (m *SR) params() int { return int(m.rules.pairs) + len(m.count) }

// addRules records x after the recent items (oldest first) as sequential
// rules: each recent item a, g items back, adds 1/g to the rule a → x, kept
// in c.nbrs[a] (c.count counts x). The table is directional, unlike add's.
func (c *cooc) addRules(x int32, recent []int32) {
	c.grow(x)
	c.count[x]++
	for g := 1; g <= len(recent); g++ {
		a := recent[len(recent)-g]
		c.grow(a)
		if a != x && c.nbrs[a].bump(x, 1/float64(g)) {
			c.pairs++
		}
	}
}

// scoreRules fills out (one entry per item) with Σ_k decay^k · rule(a_k → b)
// over the recent items a_k, the most recent first (k = 0).
func (c *cooc) scoreRules(recent []int32, decay float64, out []float64) {
	clear(out)
	w := 1.0
	for r := len(recent) - 1; r >= 0; r-- {
		if int(recent[r]) < len(c.nbrs) {
			rules := &c.nbrs[recent[r]]
			for j, it := range rules.item {
				out[it] += w * rules.count[j]
			}
		}
		w *= decay
	}
}
