// Binds the traversal source `g` that clients (gremlin-go) address.
def globals = [:]
globals << [g : traversal().withEmbedded(graph)]
