// Package snapstore owns the snapshot topic: how a model snapshot is cut
// into chunks and keyed, how chunks are put back together and checked,
// and the operations every user of the topic shares: publishing a
// snapshot, listing and finding a group's snapshots, retiring old ones and
// following the snapshots other replicas publish.
//
// A snapshot enters as a blob (the Arrow IPC stream model.Snapshotter
// writes) through Store.Publish and leaves as a Stored, reassembled and
// verified, from Store.List, Store.Find or Store.Follow. Every call takes a
// context: the caller's deadline bounds it. The Store reaches Kafka through
// one kafkaconn.Conn.
package snapstore
