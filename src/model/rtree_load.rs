//! `RTree::bulk_load` made safe to insert into afterwards. rstar 0.12's bulk load leaves the
//! entries at two depths for some sizes, and a later insert into such a tree panics ("This is a
//! bug in rstar."; georust/rstar PR #239). Both R-trees that are bulk-loaded and then appended
//! to — the trail store's block index at open, the crime index as batches are applied live —
//! load through [`load_rtree`], which builds such a tree again by inserts.

use rstar::{ParentNode, RTree, RTreeNode, RTreeObject};

/// `RTree::bulk_load(entries)`, built again by inserts when its entries are not all at one
/// depth.
pub fn load_rtree<T: RTreeObject + Clone>(entries: Vec<T>) -> RTree<T> {
    fn depths<T: RTreeObject>(node: &ParentNode<T>, depth: usize, seen: &mut Vec<usize>) {
        for child in node.children() {
            match child {
                RTreeNode::Leaf(_) => {
                    if !seen.contains(&depth) {
                        seen.push(depth);
                    }
                }
                RTreeNode::Parent(parent) => depths(parent, depth + 1, seen),
            }
        }
    }
    let tree = RTree::bulk_load(entries);
    let mut seen = Vec::new();
    depths(tree.root(), 0, &mut seen);
    if seen.len() <= 1 {
        return tree;
    }
    let mut rebuilt = RTree::new();
    for entry in tree.iter() {
        rebuilt.insert(entry.clone());
    }
    rebuilt
}
