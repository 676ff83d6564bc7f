package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// SnapshotFormat is the version of the snapshot layout this build writes
// and reads.
const SnapshotFormat = 3

// SnapshotMeta is what a snapshot says about itself; it travels as the
// Arrow schema's metadata.
type SnapshotMeta struct {
	Format  int    `json:"format"`
	Version string `json:"adaptrec_version"`
	Model   string `json:"model"`
	// Architecture: input and embedding width, hidden widths.
	In     int   `json:"in"`
	Dim    int   `json:"dim"`
	Widths []int `json:"widths"`
	// Items is the vocabulary size; Steps and Batches the training
	// counters; AdamT the optimiser's step count.
	Items   int   `json:"items"`
	Steps   int64 `json:"steps"`
	Batches int64 `json:"batches"`
	AdamT   int   `json:"adam_t"`
	// ReplayNext is the replay buffer's next slot once it is full.
	ReplayNext int `json:"replay_next"`
	// Offsets are the feedback offsets the model has consumed, by partition
	// (the next offset to read), as the worker records them.
	Offsets map[int32]int64 `json:"offsets,omitempty"`
	Seed    uint64          `json:"seed"`
	Created time.Time       `json:"created"`
	// Replica names the worker that wrote the snapshot (snapshot.replica);
	// Decider is set when it was the group's architecture decider, Final
	// when it is the last snapshot of a worker leaving the group.
	Replica string `json:"replica,omitempty"`
	Decider bool   `json:"decider,omitempty"`
	Final   bool   `json:"final,omitempty"`
	// Replicas is how many replicas were live, the writer included.
	Replicas int `json:"replicas,omitempty"`
	// Dedupe is the worker's set of recently learned event keys, oldest
	// first, which the model carries without reading it: it travels as the
	// row pipeline.dedupe (absent when empty, and in snapshots written
	// before it existed), so a restarted worker still knows them.
	Dedupe []uint64 `json:"-"`
	// Checksum is the SHA-256 of the metadata (without it) and the content
	// (every row, in order).
	Checksum string `json:"checksum"`
}

// snapshotSchema: one row per tensor (float32 values with a shape) or per
// list of strings (the vocabulary) or of integers (co-occurrence indices).
func snapshotSchema(meta SnapshotMeta) (*arrow.Schema, error) {
	raw, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	md := arrow.NewMetadata([]string{"adaptrec.snapshot"}, []string{string(raw)})
	return arrow.NewSchema([]arrow.Field{
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: "shape", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)},
		{Name: "f32", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
		{Name: "i32", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
		{Name: "str", Type: arrow.ListOf(arrow.BinaryTypes.String)},
		{Name: "i64", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)},
	}, &md), nil
}

// row is one named tensor or list of a snapshot.
type row struct {
	name  string
	shape []int64
	f32   []float32
	i32   []int32
	str   []string
	i64   []int64
}

// digest is the checksum over the metadata (its Checksum field empty) and
// the rows, in order.
func digest(meta SnapshotMeta, rows []row) string {
	h := sha256.New()
	meta.Checksum = ""
	raw, _ := json.Marshal(meta) // a struct of plain fields: cannot fail
	h.Write(raw)
	var b [8]byte
	for _, r := range rows {
		h.Write([]byte(r.name))
		h.Write([]byte{0})
		for _, s := range r.shape {
			binary.LittleEndian.PutUint64(b[:], uint64(s))
			h.Write(b[:])
		}
		for _, v := range r.f32 {
			binary.LittleEndian.PutUint32(b[:4], math.Float32bits(v))
			h.Write(b[:4])
		}
		for _, v := range r.i32 {
			binary.LittleEndian.PutUint32(b[:4], uint32(v))
			h.Write(b[:4])
		}
		for _, s := range r.str {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		for _, v := range r.i64 {
			binary.LittleEndian.PutUint64(b[:], uint64(v))
			h.Write(b[:])
		}
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// layerNames names the network's layers in qnet.layers() order.
func layerNames(n *qnet) []string {
	var names []string
	for i := range n.hidden {
		names = append(names, "hidden."+strconv.Itoa(i))
	}
	return append(names, "head", "alpha", "value")
}

// namedTensor is one of the network tensors a snapshot carries.
type namedTensor struct {
	name  string
	shape []int64
	data  []float32
}

// netTensors8 lists, per layer, the eight tensors a snapshot carries: the
// online and target weights and biases and their Adam moments.
func (d *DQN) netTensors8() []namedTensor {
	var out []namedTensor
	names := layerNames(d.net)
	for i, l := range d.net.layers() {
		tl := d.target.layers()[i]
		w, b := []int64{int64(l.in), int64(l.out)}, []int64{int64(l.out)}
		n := names[i]
		out = append(out,
			namedTensor{"net." + n + ".W", w, l.W}, namedTensor{"net." + n + ".B", b, l.B},
			namedTensor{"target." + n + ".W", w, tl.W}, namedTensor{"target." + n + ".B", b, tl.B},
			namedTensor{"adam.m." + n + ".W", w, d.opts[2*i].m}, namedTensor{"adam.v." + n + ".W", w, d.opts[2*i].v},
			namedTensor{"adam.m." + n + ".B", b, d.opts[2*i+1].m}, namedTensor{"adam.v." + n + ".B", b, d.opts[2*i+1].v})
	}
	return out
}

// rows lists the DQN's learned state: the online and target networks, the
// Adam moments, the item tables, the vocabulary and the co-occurrence
// table (CSR).
func (d *DQN) rows() []row {
	var rows []row
	for _, t := range d.netTensors8() {
		rows = append(rows, row{name: t.name, shape: t.shape, f32: t.data})
	}
	rows = append(rows, d.sumRows()...)
	n, dim := int64(len(d.bias)), int64(d.cfg.Dim)
	rows = append(rows,
		row{name: "items.ids", shape: []int64{n}, str: d.items.ids},
		row{name: "items.ein", shape: []int64{n, dim}, f32: d.ein},
		row{name: "items.eout", shape: []int64{n, dim}, f32: d.eout},
		row{name: "items.bias", shape: []int64{n}, f32: d.bias},
		row{name: "items.fresh", shape: []int64{n}, f32: d.fresh},
	)
	rows = append(rows, d.ownCooc().rows("cooc")...)
	return append(rows, d.stateRows()...)
}

// stateRows are what makes a restored model continue exactly as the
// original would: the random generator, the replay buffer, and the users'
// session state in least-recently-seen order.
func (d *DQN) stateRows() []row {
	pcg, _ := d.pcg.MarshalBinary() // cannot fail
	xpcg, _ := d.xpcg.MarshalBinary()
	var ids, sessions []string
	var consumedOff, consumed, recentOff, recent, types, parts []int32
	var lastTS, offsets []int64
	consumedOff, recentOff = append(consumedOff, 0), append(recentOff, 0)
	d.users.each(func(u *UserState) {
		ids, sessions = append(ids, u.ID), append(sessions, u.Session)
		c := make([]int32, 0, len(u.Consumed))
		for it := range u.Consumed {
			c = append(c, it)
		}
		slices.Sort(c)
		consumed = append(consumed, c...)
		consumedOff = append(consumedOff, int32(len(consumed)))
		recent = append(recent, u.Recent...)
		for _, t := range u.RecentTypes {
			types = append(types, int32(t))
		}
		recentOff = append(recentOff, int32(len(recent)))
		lastTS, parts, offsets = append(lastTS, u.LastTS), append(parts, u.Partition), append(offsets, u.Offset)
	})
	n := func(k int) []int64 { return []int64{int64(k)} }
	rows := []row{
		{name: "rng.pcg", shape: n(1), str: []string{hex.EncodeToString(pcg)}},
		{name: "rng.explore", shape: n(1), str: []string{hex.EncodeToString(xpcg)}},
	}
	rows = append(rows, transitionRows("replay", d.replay)...)
	rows = append(rows, transitionRows("pending", d.pending)...)
	return append(rows, []row{
		{name: "users.ids", shape: n(len(ids)), str: ids},
		{name: "users.session", shape: n(len(sessions)), str: sessions},
		{name: "users.consumed.offsets", shape: n(len(consumedOff)), i32: consumedOff},
		{name: "users.consumed", shape: n(len(consumed)), i32: consumed},
		{name: "users.recent.offsets", shape: n(len(recentOff)), i32: recentOff},
		{name: "users.recent", shape: n(len(recent)), i32: recent},
		{name: "users.recent.types", shape: n(len(types)), i32: types},
		{name: "users.last_ts", shape: n(len(lastTS)), i64: lastTS},
		{name: "users.partition", shape: n(len(parts)), i32: parts},
		{name: "users.offset", shape: n(len(offsets)), i64: offsets},
		{name: "users.store", shape: n(2), i64: []int64{d.users.clock.now, d.users.evicted}},
		// A row of its own, not a third value of users.store, so that
		// builds before it still read the snapshot.
		{name: "users.clock", shape: n(1), i64: []int64{d.users.clock.last}},
	}...)
}

// restoreState is the inverse of stateRows, into fresh replay and user
// stores; it checks everything before it changes anything.
func (d *DQN) restoreState(s *Snapshot) error {
	r := func(name string) row { return s.rows[name] }
	replay, err := readTransitions(s, "replay")
	if err != nil {
		return err
	}
	pending, err := readTransitions(s, "pending")
	if err != nil {
		return err
	}
	if len(pending) >= d.cfg.Rows {
		return fmt.Errorf("snapshot holds %d transitions awaiting a step of %d rows", len(pending), d.cfg.Rows)
	}
	ids, sessions := r("users.ids").str, r("users.session").str
	cOff, cons, rOff, rec, typ := r("users.consumed.offsets").i32, r("users.consumed").i32, r("users.recent.offsets").i32, r("users.recent").i32, r("users.recent.types").i32
	lastTS, parts, offs, store := r("users.last_ts").i64, r("users.partition").i32, r("users.offset").i64, r("users.store").i64
	nu := len(ids)
	if len(sessions) != nu || len(cOff) != nu+1 || len(rOff) != nu+1 || len(lastTS) != nu || len(parts) != nu || len(offs) != nu ||
		len(store) != 2 || int(cOff[nu]) != len(cons) || int(rOff[nu]) != len(rec) || len(typ) != len(rec) {
		return fmt.Errorf("snapshot's user state is inconsistent")
	}
	pcg, err := readPCG(s, "rng.pcg")
	if err != nil {
		return err
	}
	xpcg, err := readPCG(s, "rng.explore")
	if err != nil {
		return err
	}
	users := NewUserStore(d.cfg.MaxUsers, d.cfg.UserTTL.Microseconds(), d.cfg.Window)
	for i, id := range ids {
		u := users.Get(id, lastTS[i])
		u.Session, u.Partition, u.Offset, u.LastTS = sessions[i], parts[i], offs[i], lastTS[i]
		for _, it := range cons[cOff[i]:cOff[i+1]] {
			u.Consumed[it] = struct{}{}
		}
		u.Recent = append([]int32(nil), rec[rOff[i]:rOff[i+1]]...)
		for _, t := range typ[rOff[i]:rOff[i+1]] {
			u.RecentTypes = append(u.RecentTypes, feedback.Type(t))
		}
	}
	users.clock, users.evicted = EventClock{now: store[0], last: store[0]}, store[1]
	if last := r("users.clock").i64; len(last) == 1 { // absent before the row existed
		users.clock.last = last[0]
	}
	*d.pcg, *d.xpcg = pcg, xpcg
	d.replay, d.replayNext, d.users, d.pending = replay, s.Meta.ReplayNext, users, pending
	return nil
}

// transitionRows encodes transitions as the rows prefix.n (window
// lengths), .recent, .types, .pos and .reward.
func transitionRows(prefix string, trs []transition) []row {
	var rn, rrec, rtyp, rpos []int32
	var rrew []float32
	for _, tr := range trs {
		rn = append(rn, int32(tr.n))
		for k := range int(tr.n) {
			rrec = append(rrec, tr.recent[k])
			rtyp = append(rtyp, int32(tr.types[k]))
		}
		rpos = append(rpos, tr.pos)
		rrew = append(rrew, tr.reward)
	}
	n := func(k int) []int64 { return []int64{int64(k)} }
	return []row{
		{name: prefix + ".n", shape: n(len(rn)), i32: rn},
		{name: prefix + ".recent", shape: n(len(rrec)), i32: rrec},
		{name: prefix + ".types", shape: n(len(rtyp)), i32: rtyp},
		{name: prefix + ".pos", shape: n(len(rpos)), i32: rpos},
		{name: prefix + ".reward", shape: n(len(rrew)), f32: rrew},
	}
}

// readTransitions decodes the transitionRows of prefix.
func readTransitions(s *Snapshot, prefix string) ([]transition, error) {
	r := func(name string) row { return s.rows[prefix+"."+name] }
	rn, rrec, rtyp, rpos, rrew := r("n").i32, r("recent").i32, r("types").i32, r("pos").i32, r("reward").f32
	total := 0
	for _, k := range rn {
		if k < 0 || int(k) > maxWindow {
			return nil, fmt.Errorf("snapshot's %s transitions have a window of %d", prefix, k)
		}
		total += int(k)
	}
	if len(rpos) != len(rn) || len(rrew) != len(rn) || len(rrec) != total || len(rtyp) != total {
		return nil, fmt.Errorf("snapshot's %s transitions are inconsistent", prefix)
	}
	out := make([]transition, len(rn))
	at := 0
	for i, k := range rn {
		tr := &out[i]
		tr.n, tr.pos, tr.reward = uint8(k), rpos[i], rrew[i]
		for j := range int(k) {
			tr.recent[j], tr.types[j] = rrec[at], feedback.Type(rtyp[at])
			at++
		}
	}
	return out, nil
}

// readPCG decodes a random generator's state.
func readPCG(s *Snapshot, name string) (rand.PCG, error) {
	var pcg rand.PCG
	str := s.rows[name].str
	if len(str) != 1 {
		return pcg, fmt.Errorf("snapshot lacks %s, a random generator's state", name)
	}
	raw, err := hex.DecodeString(str[0])
	if err == nil {
		err = pcg.UnmarshalBinary(raw)
	}
	if err != nil {
		return pcg, fmt.Errorf("snapshot's %s: %w", name, err)
	}
	return pcg, nil
}

// WriteSnapshot writes the DQN's learned state to w as an Arrow IPC
// stream: one record, a row per tensor, the metadata (with the content's
// checksum) in the schema. meta's Offsets, Version and Created are the
// caller's; the rest is filled in.
func (d *DQN) WriteSnapshot(w io.Writer, meta SnapshotMeta) (SnapshotMeta, error) {
	rows := d.rows()
	if len(meta.Dedupe) > 0 {
		keys := make([]int64, len(meta.Dedupe))
		for i, k := range meta.Dedupe {
			keys[i] = int64(k)
		}
		rows = append(rows, row{name: dedupeRow, shape: []int64{int64(len(keys))}, i64: keys})
	}
	meta.Format, meta.Model, meta.In, meta.Dim, meta.Widths = SnapshotFormat, d.Name(), d.in, d.cfg.Dim, d.net.widths()
	meta.Items, meta.Steps, meta.Batches, meta.Seed = d.items.Len(), d.steps, d.batches, d.cfg.Seed
	meta.ReplayNext = d.replayNext
	if len(d.opts) > 0 {
		meta.AdamT = d.opts[0].t
	}
	if meta.Created.IsZero() {
		meta.Created = time.Now().UTC()
	}
	meta.Checksum = digest(meta, rows)
	// The next snapshot counts the items' interactions from here on.
	d.fresh, d.merged = make([]float32, len(d.fresh)), nil
	schema, err := snapshotSchema(meta)
	if err != nil {
		return meta, err
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	names := b.Field(0).(*array.StringBuilder)
	shapes := b.Field(1).(*array.ListBuilder)
	f32s := b.Field(2).(*array.ListBuilder)
	i32s := b.Field(3).(*array.ListBuilder)
	strs := b.Field(4).(*array.ListBuilder)
	i64s := b.Field(5).(*array.ListBuilder)
	for _, r := range rows {
		names.Append(r.name)
		shapes.Append(true)
		shapes.ValueBuilder().(*array.Int64Builder).AppendValues(r.shape, nil)
		f32s.Append(true)
		f32s.ValueBuilder().(*array.Float32Builder).AppendValues(r.f32, nil)
		i32s.Append(true)
		i32s.ValueBuilder().(*array.Int32Builder).AppendValues(r.i32, nil)
		strs.Append(true)
		strs.ValueBuilder().(*array.StringBuilder).AppendValues(r.str, nil)
		i64s.Append(true)
		i64s.ValueBuilder().(*array.Int64Builder).AppendValues(r.i64, nil)
	}
	rec := b.NewRecord()
	defer rec.Release()
	iw := ipc.NewWriter(w, ipc.WithSchema(schema))
	if err := iw.Write(rec); err != nil {
		return meta, fmt.Errorf("writing snapshot: %w", err)
	}
	return meta, iw.Close()
}

// Snapshot is a decoded, verified snapshot.
type Snapshot struct {
	Meta SnapshotMeta
	rows map[string]row
}

// ErrCorruptSnapshot reports a snapshot that cannot be trusted: unreadable,
// truncated, of another format, or whose content does not match its
// checksum.
var ErrCorruptSnapshot = errors.New("corrupt snapshot")

// ReadSnapshot decodes and verifies a snapshot. A snapshot of another
// format version, or whose checksum does not match, is an error wrapping
// ErrCorruptSnapshot that says which.
func ReadSnapshot(r io.Reader) (s *Snapshot, err error) {
	defer func() {
		if p := recover(); p != nil { // the IPC reader panics on some garbage
			s, err = nil, fmt.Errorf("%w: unreadable Arrow stream: %v", ErrCorruptSnapshot, p)
		}
	}()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading snapshot: %w", err)
	}
	// A corrupt length field must not make the reader allocate more than
	// the stream could hold.
	alloc := &boundedAllocator{limit: len(data) + 1<<16}
	rd, err := ipc.NewReader(bytes.NewReader(data), ipc.WithAllocator(alloc))
	if err != nil {
		return nil, fmt.Errorf("%w: not an Arrow IPC stream: %v", ErrCorruptSnapshot, err)
	}
	defer rd.Release()
	raw, ok := rd.Schema().Metadata().GetValue("adaptrec.snapshot")
	if !ok {
		return nil, fmt.Errorf("%w: no adaptrec.snapshot metadata", ErrCorruptSnapshot)
	}
	s = &Snapshot{rows: map[string]row{}}
	if err := json.Unmarshal([]byte(raw), &s.Meta); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrCorruptSnapshot, err)
	}
	if s.Meta.Format != SnapshotFormat {
		return nil, fmt.Errorf("%w: format %d, this build reads format %d", ErrCorruptSnapshot, s.Meta.Format, SnapshotFormat)
	}
	if !rd.Next() {
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
		}
		return nil, fmt.Errorf("%w: no record (truncated?)", ErrCorruptSnapshot)
	}
	rec := rd.Record()
	names := rec.Column(0).(*array.String)
	shapes := rec.Column(1).(*array.List)
	f32s := rec.Column(2).(*array.List)
	i32s := rec.Column(3).(*array.List)
	strs := rec.Column(4).(*array.List)
	i64s := rec.Column(5).(*array.List)
	i64V := i64s.ListValues().(*array.Int64)
	shapeV := shapes.ListValues().(*array.Int64)
	f32V := f32s.ListValues().(*array.Float32)
	i32V := i32s.ListValues().(*array.Int32)
	strV := strs.ListValues().(*array.String)
	ordered := make([]row, 0, rec.NumRows())
	for i := range int(rec.NumRows()) {
		r := row{name: names.Value(i)}
		lo, hi := shapes.ValueOffsets(i)
		r.shape = append([]int64(nil), shapeV.Int64Values()[lo:hi]...)
		lo, hi = f32s.ValueOffsets(i)
		r.f32 = append([]float32(nil), f32V.Float32Values()[lo:hi]...)
		lo, hi = i32s.ValueOffsets(i)
		r.i32 = append([]int32(nil), i32V.Int32Values()[lo:hi]...)
		lo, hi = strs.ValueOffsets(i)
		for j := lo; j < hi; j++ {
			r.str = append(r.str, strV.Value(int(j)))
		}
		lo, hi = i64s.ValueOffsets(i)
		r.i64 = append([]int64(nil), i64V.Int64Values()[lo:hi]...)
		ordered = append(ordered, r)
		s.rows[r.name] = r
	}
	if sum := digest(s.Meta, ordered); sum != s.Meta.Checksum {
		return nil, fmt.Errorf("%w: content checksum %s, metadata says %s", ErrCorruptSnapshot, sum[:12], short(s.Meta.Checksum))
	}
	for _, k := range s.rows[dedupeRow].i64 {
		s.Meta.Dedupe = append(s.Meta.Dedupe, uint64(k))
	}
	return s, nil
}

// dedupeRow carries SnapshotMeta.Dedupe.
const dedupeRow = "pipeline.dedupe"

// boundedAllocator refuses (by panicking, which ReadSnapshot recovers)
// any allocation larger than limit.
type boundedAllocator struct{ limit int }

// Allocate implements memory.Allocator, refusing more than the limit.
func (a *boundedAllocator) Allocate(size int) []byte {
	a.check(size)
	return memory.DefaultAllocator.Allocate(size)
}

// Reallocate implements memory.Allocator, refusing more than the limit.
func (a *boundedAllocator) Reallocate(size int, b []byte) []byte {
	a.check(size)
	return memory.DefaultAllocator.Reallocate(size, b)
}

// check panics if size is over the limit.
func (a *boundedAllocator) check(size int) {
	if size > a.limit {
		panic(fmt.Sprintf("allocation of %d bytes from a %d-byte stream", size, a.limit))
	}
}

// Free implements memory.Allocator.
func (a *boundedAllocator) Free(b []byte) { memory.DefaultAllocator.Free(b) }

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// Restore replaces the DQN's state with the snapshot's: the architecture,
// both networks, the optimiser state, the item tables, the vocabulary, the
// co-occurrence table, the random generator, the replay buffer and the
// users' session state, so that the restored model continues exactly as
// the original would have. A snapshot of another input or embedding width
// is refused.
func (d *DQN) Restore(s *Snapshot) error {
	m := s.Meta
	nets, err := d.loadNets(s, "loaded into")
	if err != nil {
		return err
	}
	ids, ok := s.rows["items.ids"]
	if !ok || len(ids.str) != m.Items {
		return fmt.Errorf("snapshot's vocabulary does not hold its %d items", m.Items)
	}
	n, dim := len(ids.str), d.cfg.Dim
	get := s.floats
	ein, err := get("items.ein", n*dim)
	if err != nil {
		return err
	}
	eout, err := get("items.eout", n*dim)
	if err != nil {
		return err
	}
	bias, err := get("items.bias", n)
	if err != nil {
		return err
	}
	own, err := readTable(s, "cooc", n)
	if err != nil {
		return err
	}
	legacy, err := readTable(s, "legacy.cooc", n)
	if err != nil {
		return err
	}
	own.local, legacy.local = identity(n), identity(n)
	if err := d.restoreState(s); err != nil {
		return err
	}
	// All checked: replace the state.
	if err := d.setNets(nets, m.AdamT); err != nil {
		return err
	}
	d.items = NewVocab()
	for _, id := range ids.str {
		d.items.Add(id)
	}
	d.ein, d.eout, d.bias = ein, eout, bias
	d.fresh, d.merged = make([]float32, n), nil
	d.co, d.sums.legacyCo = cooc{}, cooc{}
	d.co.grow(int32(n) - 1)
	d.co.apply(own, 1)
	d.co.apply(legacy, 1)
	d.sums.legacyCo.apply(legacy, 1)
	d.inheritSums(s, nets.sums)
	d.restoreSums(s, nets.sums, own)
	d.steps, d.batches = m.Steps, m.Batches
	return nil
}

// floats returns a copy of the snapshot's tensor name, which must have n
// values (the model owns its state: one snapshot can restore several).
func (s *Snapshot) floats(name string, n int) ([]float32, error) {
	r, ok := s.rows[name]
	if !ok {
		return nil, fmt.Errorf("snapshot lacks %s", name)
	}
	if len(r.f32) != n {
		return nil, fmt.Errorf("snapshot's %s has %d values, the architecture needs %d", name, len(r.f32), n)
	}
	return slices.Clone(r.f32), nil
}

// snapNets are the networks of a snapshot: online, target, and the Adam
// moments of each layer's weights and biases.
type snapNets struct {
	net, target *qnet
	mom         []struct{ mW, vW, mB, vB []float32 }
	sums        snapSums
}

// loadNets reads the snapshot's networks at its architecture; a snapshot
// of another input or embedding width cannot be used (how: "loaded into",
// "adopted by").
func (d *DQN) loadNets(s *Snapshot, how string) (snapNets, error) {
	if m := s.Meta; m.Dim != d.cfg.Dim || m.In != d.in {
		return snapNets{}, fmt.Errorf("snapshot of a DQN with dim %d (input %d) cannot be %s one with dim %d (input %d)", m.Dim, m.In, how, d.cfg.Dim, d.in)
	}
	net := newQNet(d.in, d.cfg.Dim, s.Meta.Widths, rand.New(rand.NewPCG(0, 0))) // every weight is overwritten
	net.skip = d.net.skip
	out := snapNets{net: net, target: net.clone()}
	names := layerNames(net)
	out.mom = make([]struct{ mW, vW, mB, vB []float32 }, len(names))
	for i, l := range net.layers() {
		tl, mom := out.target.layers()[i], &out.mom[i]
		var err error
		load := func(dst *[]float32, name string, n int) {
			if err == nil {
				var v []float32
				if v, err = s.floats(name, n); err == nil {
					*dst = v
				}
			}
		}
		load(&l.W, "net."+names[i]+".W", len(l.W))
		load(&l.B, "net."+names[i]+".B", len(l.B))
		load(&tl.W, "target."+names[i]+".W", len(tl.W))
		load(&tl.B, "target."+names[i]+".B", len(tl.B))
		load(&mom.mW, "adam.m."+names[i]+".W", len(l.W))
		load(&mom.vW, "adam.v."+names[i]+".W", len(l.W))
		load(&mom.mB, "adam.m."+names[i]+".B", len(l.B))
		load(&mom.vB, "adam.v."+names[i]+".B", len(l.B))
		if err != nil {
			return snapNets{}, err
		}
	}
	var err error
	if out.sums, err = snapshotSums(s, net); err != nil {
		return snapNets{}, err
	}
	return out, nil
}

// setNets makes n the model's networks and optimiser state (at Adam step
// t) and rebuilds the training graph.
func (d *DQN) setNets(n snapNets, t int) error {
	d.net, d.target = n.net, n.target
	if err := d.rebuild(); err != nil {
		return err
	}
	for i, m := range n.mom {
		d.opts[2*i].m, d.opts[2*i].v, d.opts[2*i].t = m.mW, m.vW, t
		d.opts[2*i+1].m, d.opts[2*i+1].v, d.opts[2*i+1].t = m.mB, m.vB, t
	}
	return nil
}

// Adopt takes the snapshot's networks (online, target, Adam moments) in
// place of the model's own, at the snapshot's architecture: how a replica
// applies an architecture change of the group's decider before it merges
// with it. The item tables, the vocabulary, the co-occurrence table, the
// replay buffer and the users stay the model's own.
func (d *DQN) Adopt(s *Snapshot) error {
	m := s.Meta
	nets, err := d.loadNets(s, "adopted by")
	if err != nil {
		return err
	}
	if err := d.setNets(nets, m.AdamT); err != nil {
		return err
	}
	d.inheritSums(s, nets.sums)
	return nil
}

// Merge merges another replica's snapshot into the model. The online
// network and the co-occurrence counts add up (see replicaSums): what the
// other replica learned itself since its snapshot merged before is added.
// The target network and Adam moments are averaged, the snapshot's with
// weight w in [0, 1]. The item tables are sparse (an item is learned by
// the replicas whose users meet it), so each item both know is weighed by
// the interactions each learned since its last snapshot: an item only the
// other learned takes its values, one both learned is averaged in
// proportion, one neither learned gets weight w. Items only the other
// knows are added with its values. Merging the same snapshot twice
// changes nothing. The two must have the same architecture (an
// architecture change is applied to every replica before they merge:
// Adopt). The replay buffer and the users stay the model's own: they
// describe the partitions this replica serves.
func (d *DQN) Merge(s *Snapshot, w float64) error { return d.merge(s, w, true) }

// MergeSums merges what adds up of the snapshot of a replica that left
// the group long ago: its own network steps (at the model's architecture)
// and co-occurrence counts, and the items only it knows. Nothing is
// averaged: its other tensors are stale. A worker that restarts from its
// own snapshot uses it to add back departed replicas' counts, which its
// snapshot does not carry.
func (d *DQN) MergeSums(s *Snapshot) error { return d.merge(s, 0, false) }

// merge is Merge, or MergeSums when average is false.
func (d *DQN) merge(s *Snapshot, w float64, average bool) error {
	m := s.Meta
	if w < 0 || w > 1 {
		return fmt.Errorf("merge weight %g is not within [0, 1]", w)
	}
	if m.Dim != d.cfg.Dim || m.In != d.in {
		return fmt.Errorf("cannot merge a snapshot of dim %d (input %d) into a model of dim %d (input %d)", m.Dim, m.In, d.cfg.Dim, d.in)
	}
	sameNet := slices.Equal(m.Widths, d.net.widths())
	if average && !sameNet {
		return fmt.Errorf("cannot merge a snapshot of widths %v into a model of widths %v: apply the architecture change first", m.Widths, d.net.widths())
	}
	if d.folded(s) {
		return nil // its learning is in the legacy already
	}
	tensors := d.netTensors8()
	var sums snapSums
	var err error
	if sameNet {
		for _, t := range tensors {
			if r, ok := s.rows[t.name]; !ok || len(r.f32) != len(t.data) {
				return fmt.Errorf("snapshot's %s does not match the model's", t.name)
			}
		}
		sums, err = snapshotSums(s, d.net)
	} else {
		sums.legacy, err = legacyKeys(s)
	}
	if err != nil {
		return err
	}
	ids := s.rows["items.ids"].str
	n, dim := len(ids), d.cfg.Dim
	ein, eout, bias := s.rows["items.ein"].f32, s.rows["items.eout"].f32, s.rows["items.bias"].f32
	fresh := s.rows["items.fresh"].f32
	if len(ein) != n*dim || len(eout) != n*dim || len(bias) != n || len(fresh) != n {
		return fmt.Errorf("snapshot's item tables do not match its vocabulary")
	}
	own, err := readTable(s, "cooc", n)
	if err != nil {
		return err
	}
	legacy, err := readTable(s, "legacy.cooc", n)
	if err != nil {
		return err
	}
	a, b := float32(1-w), float32(w)
	for _, t := range tensors {
		if !average || strings.HasPrefix(t.name, "net.") {
			continue // nothing averaged, or summed: mergeNet
		}
		for j, v := range s.rows[t.name].f32 {
			t.data[j] = a*t.data[j] + b*v
		}
	}
	if sameNet {
		d.mergeNet(s, sums.own)
	}
	if d.merged == nil {
		d.merged = slices.Clone(d.fresh)
	}
	local := make([]int32, n) // the snapshot's item index -> ours
	for k, id := range ids {
		x, known := d.items.Lookup(id)
		local[k] = x
		if !known {
			x = d.items.Add(id)
			local[k] = x
			d.ein = append(d.ein, ein[k*dim:(k+1)*dim]...)
			d.eout = append(d.eout, eout[k*dim:(k+1)*dim]...)
			d.bias = append(d.bias, bias[k])
			d.fresh = append(d.fresh, 0)
			d.merged = append(d.merged, fresh[k])
			d.co.grow(x)
			continue
		}
		if !average {
			continue
		}
		ia, ib := a, b
		if own, other := d.merged[x], fresh[k]; own+other > 0 {
			ib = other / (own + other)
			ia = 1 - ib
		}
		d.merged[x] += fresh[k]
		for j := range dim {
			d.ein[int(x)*dim+j] = ia*d.ein[int(x)*dim+j] + ib*ein[k*dim+j]
			d.eout[int(x)*dim+j] = ia*d.eout[int(x)*dim+j] + ib*eout[k*dim+j]
		}
		d.bias[x] = ia*d.bias[x] + ib*bias[k]
	}
	// Co-occurrence counts add up over replicas (a grow-only counter per
	// replica): each snapshot carries its replica's own counts, which
	// replace what the previous one of that replica added.
	own.local, legacy.local = local, local
	d.mergeCooc(s, own)
	d.mergeLegacy(legacy, sums)
	if m.Final {
		d.fold(m.Replica, m.Created.UnixNano())
	}
	return nil
}
