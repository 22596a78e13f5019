package graph

import (
	"context"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/graph/model"
)

// pageShape is what a client asks of a connection besides its nodes: cursors
// cost a JSON encoding each, so they are made only when asked for.
type pageShape struct{ edges, pageInfo bool }

// shapeOf reads the shape the connection field of ctx asks for.
func shapeOf(ctx context.Context) pageShape {
	return pageShape{edges: selects(ctx, "edges"), pageInfo: selects(ctx, "pageInfo")}
}

// connection trims rows fetched with one extra row to the page size and
// builds the page info of a Relay connection from them, and its edges when
// asked: a client that asks only for nodes pays for no cursor.
func connection[T, E any](rows []T, size int, sh pageShape, cursor func(T) string, edge func(string, *T) E) ([]T, []E, *model.PageInfo) {
	hasNext := len(rows) > size
	if hasNext {
		rows = rows[:size]
	}
	info := &model.PageInfo{HasNextPage: hasNext}
	if len(rows) > 0 && sh.pageInfo {
		c := cursor(rows[len(rows)-1])
		info.EndCursor = &c
	}
	if !sh.edges {
		return rows, []E{}, info
	}
	edges := make([]E, len(rows))
	for i := range rows {
		edges[i] = edge(cursor(rows[i]), &rows[i])
	}
	return rows, edges, info
}

func storyConnection(rows []db.Story, size int, sh pageShape) *model.StoryConnection {
	nodes, edges, info := connection(rows, size, sh, storyCursor, func(c string, n *db.Story) model.StoryEdge {
		return model.StoryEdge{Cursor: c, Node: n}
	})
	return &model.StoryConnection{Nodes: nodes, Edges: edges, PageInfo: info}
}

func generationConnection(rows []db.Generation, size int, sh pageShape) *model.StoryGenerationConnection {
	nodes, edges, info := connection(rows, size, sh, generationCursor, func(c string, n *db.Generation) model.StoryGenerationEdge {
		return model.StoryGenerationEdge{Cursor: c, Node: n}
	})
	return &model.StoryGenerationConnection{Nodes: nodes, Edges: edges, PageInfo: info}
}

func logConnection(rows []db.Log, size int, sh pageShape) *model.GenerationLogConnection {
	nodes, edges, info := connection(rows, size, sh, logCursor, func(c string, n *db.Log) model.GenerationLogEdge {
		return model.GenerationLogEdge{Cursor: c, Node: n}
	})
	return &model.GenerationLogConnection{Nodes: nodes, Edges: edges, PageInfo: info}
}
