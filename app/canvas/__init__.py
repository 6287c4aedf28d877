"""The node canvas: a QGraphicsScene mirroring the document, and the view that edits it."""
