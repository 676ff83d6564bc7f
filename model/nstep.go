package model

// maxNStep bounds DQNConfig.NStep: a user holds at most NStep-1
// transitions.
const maxNStep = 64

// nstep is what an n-step transition adds to its own reward: ret, the
// discounted rewards of its session's next events (γ·r_t+1 + … ), steps
// their number; disc, the discount of what comes next (γ^(steps+1), and
// of the bootstrap once complete; 0 once the session closed: nothing more
// to earn in it); and last, the transition of the latest of those events,
// whose next state the bootstrap values.
type nstep struct {
	ret, disc float32
	steps     int
	last      transition
}

// learnTransition learns the transition of u's event just read: the item
// tables at once, the network when cfg.Rows transitions are pending. With
// NStep > 1 the transition is held until its session has NStep-1 more
// events or closes, and its reward is added to the returns of u's held
// ones.
func (d *DQN) learnTransition(u *UserState, tr transition) error {
	if d.cfg.NStep <= 1 {
		d.pending = append(d.pending, tr)
		d.trainTable(&d.pending[len(d.pending)-1])
		return d.trainIfFull()
	}
	d.trainTable(&tr)
	gamma := float32(d.cfg.Gamma)
	held := d.held[u]
	keep := held[:0]
	for _, h := range held {
		h.ns.ret += h.ns.disc * tr.reward
		h.ns.disc *= gamma
		h.ns.steps++
		h.ns.last = tr
		if h.ns.steps == d.cfg.NStep-1 {
			d.ready = append(d.ready, h)
			continue
		}
		keep = append(keep, h)
	}
	tr.ns = &nstep{disc: gamma, last: tr}
	if d.held == nil {
		d.held = map[*UserState][]transition{}
	}
	d.held[u] = append(keep, tr)
	return d.trainReady()
}

// endHeld completes u's held transitions when u's session closes: their
// returns stop there, with no bootstrap.
func (d *DQN) endHeld(u *UserState) {
	for _, h := range d.held[u] {
		h.ns.disc = 0
		d.ready = append(d.ready, h)
	}
	delete(d.held, u)
}

// trainReady moves the completed transitions to the pending ones,
// training the network each time cfg.Rows are pending.
func (d *DQN) trainReady() error {
	for i, tr := range d.ready {
		d.pending = append(d.pending, tr)
		if err := d.trainIfFull(); err != nil {
			d.ready = append(d.ready[:0], d.ready[i+1:]...)
			return err
		}
	}
	d.ready = d.ready[:0]
	return nil
}

// trainIfFull trains the network on the pending transitions once there
// are cfg.Rows of them.
func (d *DQN) trainIfFull() error {
	if len(d.pending) == d.cfg.Rows {
		return d.trainRows()
	}
	return nil
}
