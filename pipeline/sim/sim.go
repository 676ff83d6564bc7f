// Package sim is a closed-loop population of simulated users: they are
// shown recommendation lists, choose from them (or leave), and their
// choices become the feedback events the recommender learns from.
//
// Users have latent preference vectors over a space in which items cluster
// by topic. Preferences drift (a slow random walk between sessions, an
// occasional shift of interest, and optionally one scheduled shift of
// every user's interests) and respond to what users are shown: a
// satisfying item pulls the user's interest towards it, an unsatisfying
// one pushes it away, and repeated topics tire. A user picks from a shown
// list by a multinomial logit with a no-choice option; a pick is a click,
// often followed by a view whose dwell time grows with satisfaction, and
// sometimes by a rating. Sessions last while the user's patience holds:
// satisfying picks restore it, leaving the list drains it, so good
// long-term recommendations earn longer sessions.
//
// Everything is drawn from one seeded generator: the same Config and the
// same lists give the same events.
package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// Config is the population and its behaviour.
type Config struct {
	Users, Items, Topics, Dim int
	// Concurrency is the number of users in a session at any time: one
	// tick of the loop is one step of each of them.
	Concurrency int
	// Sessions to run in total.
	Sessions int
	// Drift is the standard deviation of the random walk of a user's
	// preferences between sessions; ShiftProb the probability that a
	// session starts with a new interest.
	Drift, ShiftProb float64
	// ShiftAt, if in (0, 1), is the fraction of Sessions after which every
	// user's interests move to other topics at once.
	ShiftAt float64
	// NoChoice is the utility of leaving the list; Temperature scales
	// utilities in the logit; PopWeight weighs an item's popularity;
	// Fatigue weighs how often the user consumed the item's topic lately.
	NoChoice, Temperature, PopWeight, Fatigue float64
	// Patience is a session's starting patience; MaxSteps bounds a session.
	Patience float64
	MaxSteps int
	// ViewProb and RatingProb are the chances that a click is followed by
	// a view and by a rating.
	ViewProb, RatingProb float64
	// Quality weighs an item's quality in the patience a pick leaves, as
	// in RecSim's interest evolution: what a user chooses and the reward of
	// a pick do not depend on it, so a policy that looks only at the next
	// pick cannot see it, while the sessions it shortens or lengthens carry
	// it (0: off). An item's quality is its topic's, spread evenly from −1
	// to 1 across the topics, plus noise of 0.25.
	Quality float64
	Seed    uint64
}

// Default is the default population.
func Default() Config {
	return Config{
		Users: 5000, Items: 2000, Topics: 20, Dim: 16, Concurrency: 256, Sessions: 20000,
		Drift: 0.02, ShiftProb: 0.01, ShiftAt: 0.5,
		NoChoice: 1, Temperature: 0.25, PopWeight: 0.1, Fatigue: 0.3,
		Patience: 2, MaxSteps: 40, ViewProb: 0.6, RatingProb: 0.2, Seed: 1,
	}
}

// Check reports the first invalid field.
func (c Config) Check() error {
	for name, v := range map[string]int{"users": c.Users, "items": c.Items, "topics": c.Topics, "dim": c.Dim,
		"concurrency": c.Concurrency, "sessions": c.Sessions, "max_steps": c.MaxSteps} {
		if v <= 0 {
			return fmt.Errorf("sim.%s: must be positive, got %d", name, v)
		}
	}
	if c.Concurrency >= c.Users {
		return fmt.Errorf("sim.concurrency: %d sessions at once need more than %d users", c.Concurrency, c.Users)
	}
	if c.Topics > c.Items {
		return fmt.Errorf("sim.topics: %d topics for %d items", c.Topics, c.Items)
	}
	if c.Temperature <= 0 {
		return fmt.Errorf("sim.temperature: must be positive, got %g", c.Temperature)
	}
	for name, v := range map[string]float64{"shift_prob": c.ShiftProb, "view_prob": c.ViewProb, "rating_prob": c.RatingProb} {
		if v < 0 || v > 1 {
			return fmt.Errorf("sim.%s: must be within [0, 1], got %g", name, v)
		}
	}
	if c.Quality < 0 {
		return fmt.Errorf("sim.quality: must not be negative, got %g", c.Quality)
	}
	if c.ShiftAt < 0 || c.ShiftAt >= 1 {
		return fmt.Errorf("sim.shift_at: must be within [0, 1), got %g", c.ShiftAt)
	}
	return nil
}

type item struct {
	id    string
	vec   []float64
	topic int
	logp  float64 // log popularity (Zipf), centred
	// quality moves the patience a pick leaves (Config.Quality).
	quality float64
}

type user struct {
	id       string
	pref     []float64
	fatigue  []float64 // per topic
	sessions int
	busy     bool // in a session
}

type session struct {
	u        *user
	id       string
	patience float64
	steps    int
	list     []string // the list shown after the user's last event
	consumed map[int]bool
	clicks   int
	reward   float64
}

// Sim is the population. Not safe for concurrent use.
type Sim struct {
	cfg Config
	// rng draws choices and outcomes; sessions draw from their own
	// generators (see begin).
	rng     *rand.Rand
	items   []item
	byID    map[string]int
	centres [][]float64
	users   []user
	active  []*session
	waiting []draw // sessions drawn whose user was still in a session
	drawn   int    // sessions drawn
	started int    // sessions started
	clock   time.Time
	shifted bool
	// Oracle, when set, makes Step compute the regret of every list
	// against the best list for the user's true preferences.
	Oracle  bool
	scratch []float64
}

// New builds the population of cfg.
func New(cfg Config) (*Sim, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5a11)), byID: map[string]int{},
		clock: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	for range cfg.Topics {
		s.centres = append(s.centres, s.unit(nil))
	}
	// Qualities come from a generator of their own, so that the population
	// is the same with and without them.
	qrng := rand.New(rand.NewPCG(cfg.Seed, 0x9a11))
	for i := range cfg.Items {
		t := i % cfg.Topics
		v := make([]float64, cfg.Dim)
		for j := range v {
			v[j] = s.centres[t][j] + 0.35*s.rng.NormFloat64()/math.Sqrt(float64(cfg.Dim))
		}
		normalise(v)
		// Zipf popularity: rank r has weight 1/(r+1).
		logp := -math.Log(float64(s.rng.IntN(cfg.Items) + 1))
		quality := 0.25 * qrng.NormFloat64()
		if cfg.Topics > 1 {
			quality += -1 + 2*float64(t)/float64(cfg.Topics-1)
		}
		s.items = append(s.items, item{id: fmt.Sprint("i", i), vec: v, topic: t, logp: logp + math.Log(float64(cfg.Items))/2, quality: quality})
		s.byID[s.items[i].id] = i
	}
	for u := range cfg.Users {
		s.users = append(s.users, user{id: fmt.Sprint("u", u), pref: s.interest(s.rng), fatigue: make([]float64, cfg.Topics)})
	}
	s.scratch = make([]float64, cfg.Items)
	return s, nil
}

// unit returns a random unit vector (in buf if it is long enough).
func (s *Sim) unit(buf []float64) []float64 {
	if len(buf) != s.cfg.Dim {
		buf = make([]float64, s.cfg.Dim)
	}
	for j := range buf {
		buf[j] = s.rng.NormFloat64()
	}
	normalise(buf)
	return buf
}

// interest is a preference vector between one or two topic centres.
func (s *Sim) interest(rng *rand.Rand) []float64 {
	a, b := rng.IntN(s.cfg.Topics), rng.IntN(s.cfg.Topics)
	w := 0.5 + 0.5*rng.Float64()
	v := make([]float64, s.cfg.Dim)
	for j := range v {
		v[j] = w*s.centres[a][j] + (1-w)*s.centres[b][j] + 0.1*rng.NormFloat64()/math.Sqrt(float64(s.cfg.Dim))
	}
	normalise(v)
	return v
}

func normalise(v []float64) {
	n := 0.0
	for _, x := range v {
		n += x * x
	}
	if n = math.Sqrt(n); n > 0 {
		for j := range v {
			v[j] /= n
		}
	}
}

func dot(a, b []float64) float64 {
	s := 0.0
	for j := range a {
		s += a[j] * b[j]
	}
	return s
}

// Satisfaction is how much user u likes item i, in (0, 1).
func (s *Sim) satisfaction(u *user, i int) float64 {
	return 1 / (1 + math.Exp(-6*(dot(u.pref, s.items[i].vec)-0.5)))
}

// utility drives the choice: liking, popularity, topic fatigue; an item
// already consumed in the session is hardly ever picked again.
func (s *Sim) utility(ss *session, i int) float64 {
	it := &s.items[i]
	u := 2*dot(ss.u.pref, it.vec) + s.cfg.PopWeight*it.logp - s.cfg.Fatigue*ss.u.fatigue[it.topic]
	if ss.consumed[i] {
		u -= 5
	}
	return u
}

// ExpectedReward is the mean reward of picking item i given satisfaction
// sat, under the DQN's default reward map (click 1, view 0.5 + 0.5 per
// minute of dwell, rating (r − 3)/2).
func (s *Sim) expectedReward(sat float64) float64 {
	dwell := 20 + 280*sat
	rating := 1 + 4*sat
	return 1 + s.cfg.ViewProb*(0.5+0.5*dwell/60) + s.cfg.RatingProb*(rating-3)/2
}

// choiceProbs fills p with the logit probabilities of the listed items
// (known ones) and returns the no-choice probability.
func (s *Sim) choiceProbs(ss *session, list []int, p []float64) float64 {
	t := s.cfg.Temperature
	mx := s.cfg.NoChoice / t
	for k, i := range list {
		p[k] = s.utility(ss, i) / t
		mx = max(mx, p[k])
	}
	none := math.Exp(s.cfg.NoChoice/t - mx)
	total := none
	for k := range list {
		p[k] = math.Exp(p[k] - mx)
		total += p[k]
	}
	for k := range list {
		p[k] /= total
	}
	return none / total
}

// listReward is the expected reward of showing list to the session's user.
func (s *Sim) listReward(ss *session, list []int) float64 {
	p := make([]float64, len(list))
	s.choiceProbs(ss, list, p)
	r := 0.0
	for k, i := range list {
		r += p[k] * s.expectedReward(s.satisfaction(ss.u, i))
	}
	return r
}

// oracleList is the best list of n items for the user's true state: the
// n items of highest utility-weighted expected reward.
func (s *Sim) oracleList(ss *session, n int) []int {
	t := s.cfg.Temperature
	best := make([]int, 0, n)
	for i := range s.items {
		s.scratch[i] = math.Exp(s.utility(ss, i)/t) * s.expectedReward(s.satisfaction(ss.u, i))
		// insertion into the top n
		k := len(best)
		if k < n {
			best = append(best, i)
		} else if s.scratch[i] <= s.scratch[best[n-1]] {
			continue
		} else {
			k = n - 1
			best[k] = i
		}
		for k > 0 && s.scratch[best[k]] > s.scratch[best[k-1]] {
			best[k], best[k-1] = best[k-1], best[k]
			k--
		}
	}
	return best
}

// Lists are the recommendation lists a policy returns for a tick, by user.
type Lists map[string][]string

// Tick is one step of every active session.
type Tick struct {
	Events []feedback.Event
	// Per list shown this tick: the users who chose and the rewards.
	Shown, Chosen int
	Reward        float64 // reward of the tick's events
	ListReward    float64 // the part of Reward earned from lists (picks)
	Regret        float64 // Oracle only: expected reward of the oracle's lists minus the shown ones'
	Ended         int     // sessions that ended
	EndedSteps    int     // their total steps (lists shown)
	EndedClicks   int     // their total clicks
	EndedReward   float64 // their total reward
	Shift         bool    // the scheduled shift happened before this tick
}

// Done reports whether every session has been run.
func (s *Sim) Done() bool { return s.started >= s.cfg.Sessions && len(s.active) == 0 }

// Started is the number of sessions started.
func (s *Sim) Started() int { return s.started }

// Step advances the population one tick given the lists the policy
// returned for the previous tick's events (nil at first), and returns the
// events of this tick: users in a session react to their list (a pick is a
// click, perhaps a view and a rating; leaving emits nothing), new sessions
// start with a view of an item the user came for.
func (s *Sim) Step(prev Lists) Tick {
	var t Tick
	s.clock = s.clock.Add(time.Second)
	if !s.shifted && s.cfg.ShiftAt > 0 && float64(s.started) >= s.cfg.ShiftAt*float64(s.cfg.Sessions) {
		s.shift()
		t.Shift = true
	}
	for len(s.active) < s.cfg.Concurrency && s.begin(&t) {
	}
	var list []int
	probs := make([]float64, 64)
	keep := s.active[:0]
	for _, ss := range s.active {
		if l, ok := prev[ss.u.id]; ok {
			ss.list = l
		}
		if ss.list == nil { // started this tick: the arrival event was emitted
			keep = append(keep, ss)
			ss.list = []string{} // from now on the user reacts to lists
			continue
		}
		list = list[:0]
		for _, id := range ss.list {
			if i, ok := s.byID[id]; ok {
				list = append(list, i)
			}
		}
		if len(list) > len(probs) {
			probs = make([]float64, len(list))
		}
		ss.steps++
		t.Shown++
		if s.Oracle {
			o := s.oracleList(ss, max(len(list), 10))
			t.Regret += s.listReward(ss, o) - s.listReward(ss, list)
		}
		s.choiceProbs(ss, list, probs)
		u, pick := s.rng.Float64(), -1
		for k := range list {
			if u < probs[k] {
				pick = list[k]
				break
			}
			u -= probs[k]
		}
		if pick < 0 {
			ss.patience--
		} else {
			t.Chosen++
			ss.clicks++
			before := t.Reward
			sat := s.consume(ss, pick, &t)
			ss.reward += t.Reward - before
			ss.patience += 2*(sat-0.5) - 0.2 + s.cfg.Quality*s.items[pick].quality
		}
		for k := range ss.u.fatigue {
			ss.u.fatigue[k] *= 0.8
		}
		if ss.patience <= 0 || ss.steps >= s.cfg.MaxSteps {
			ss.u.busy = false
			t.Ended++
			t.EndedSteps += ss.steps
			t.EndedClicks += ss.clicks
			t.EndedReward += ss.reward
			continue
		}
		keep = append(keep, ss)
	}
	clear(s.active[len(keep):])
	s.active = keep
	return t
}

// begin starts the next session whose user is free: sessions waiting for
// their user first, then new ones. Session k draws its user, drift and
// entry candidates from its own generator (seed, k), so every policy runs
// the same sessions for the same users; only when each starts depends on
// how long the user's previous session lasted.
func (s *Sim) begin(t *Tick) bool {
	for i, w := range s.waiting {
		if !s.users[w.user].busy {
			s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
			s.open(w, t)
			return true
		}
	}
	for s.drawn < s.cfg.Sessions {
		k := s.drawn
		s.drawn++
		r := rand.New(rand.NewPCG(s.cfg.Seed^0xa77, uint64(k)))
		w := draw{k: k, user: r.IntN(len(s.users)), rng: r}
		if s.users[w.user].busy {
			s.waiting = append(s.waiting, w)
			continue
		}
		s.open(w, t)
		return true
	}
	return false
}

// draw is a session before it starts.
type draw struct {
	k, user int
	rng     *rand.Rand
}

// open starts session w: the user's preferences drift, and the session
// opens with a view of an item the user came for.
func (s *Sim) open(w draw, t *Tick) {
	u := &s.users[w.user]
	u.busy = true
	if w.rng.Float64() < s.cfg.ShiftProb {
		u.pref = s.interest(w.rng)
	} else {
		for j := range u.pref {
			u.pref[j] += s.cfg.Drift * w.rng.NormFloat64()
		}
		normalise(u.pref)
	}
	ss := &session{u: u, id: fmt.Sprintf("%s-s%d", u.id, w.k), patience: s.cfg.Patience, consumed: map[int]bool{}}
	u.sessions++
	s.started++
	// The entry item: the best of a few popular draws for this user.
	entry, best := 0, math.Inf(-1)
	for range 8 {
		i := w.rng.IntN(len(s.items))
		if v := dot(u.pref, s.items[i].vec) + 0.1*s.items[i].logp; v > best {
			entry, best = i, v
		}
	}
	ss.consumed[entry] = true
	t.Events = append(t.Events, feedback.Event{UserID: u.id, SessionID: ss.id, ItemID: s.items[entry].id,
		Type: feedback.View, Value: 30, HasValue: true, TS: s.clock})
	t.Reward += 0.5 + 0.5*30.0/60
	ss.reward = 0.5 + 0.5*30.0/60
	s.active = append(s.active, ss)
}

// consume emits the events of a pick and moves the user's interest.
func (s *Sim) consume(ss *session, i int, t *Tick) float64 {
	it := &s.items[i]
	sat := s.satisfaction(ss.u, i)
	ev := feedback.Event{UserID: ss.u.id, SessionID: ss.id, ItemID: it.id, TS: s.clock}
	ev.Type = feedback.Click
	t.Events = append(t.Events, ev)
	before := t.Reward
	defer func() { t.ListReward += t.Reward - before }()
	t.Reward++
	if s.rng.Float64() < s.cfg.ViewProb {
		dwell := math.Max(1, 20+280*sat+20*s.rng.NormFloat64())
		ev.Type, ev.Value, ev.HasValue = feedback.View, math.Round(dwell), true
		t.Events = append(t.Events, ev)
		t.Reward += 0.5 + 0.5*ev.Value/60
	}
	if s.rng.Float64() < s.cfg.RatingProb {
		r := math.Round(2*math.Min(5, math.Max(0.5, 1+4*sat+0.5*s.rng.NormFloat64()))) / 2
		ev.Type, ev.Value, ev.HasValue = feedback.Rating, r, true
		t.Events = append(t.Events, ev)
		t.Reward += (r - 3) / 2
	}
	ss.consumed[i] = true
	ss.u.fatigue[it.topic]++
	// Interest grows towards satisfying items and away from the others.
	for j := range ss.u.pref {
		ss.u.pref[j] += 0.05 * (sat - 0.5) * it.vec[j]
	}
	normalise(ss.u.pref)
	return sat
}

// shift moves every user's interests to other topics: the centre of topic
// k becomes that of topic k+1 in their preference.
func (s *Sim) shift() {
	s.shifted = true
	for u := range s.users {
		p := s.users[u].pref
		// Project on the topic centres and re-mix with the next topic's.
		next := make([]float64, s.cfg.Dim)
		for k, c := range s.centres {
			w := math.Max(0, dot(p, c))
			nc := s.centres[(k+1)%len(s.centres)]
			for j := range next {
				next[j] += w * w * nc[j]
			}
		}
		normalise(next)
		copy(p, next)
	}
}
