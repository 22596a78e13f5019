package graph

import (
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/graph/model"
)

// connection trims rows fetched with one extra row to the page size and
// builds the page info of a Relay connection from them, and its edges when
// withEdges: a client that asks only for nodes pays for no cursor but the
// last.
func connection[T, E any](rows []T, size int, withEdges bool, cursor func(T) string, edge func(string, *T) E) ([]T, []E, *model.PageInfo) {
	hasNext := len(rows) > size
	if hasNext {
		rows = rows[:size]
	}
	info := &model.PageInfo{HasNextPage: hasNext}
	if len(rows) > 0 {
		c := cursor(rows[len(rows)-1])
		info.EndCursor = &c
	}
	if !withEdges {
		return rows, []E{}, info
	}
	edges := make([]E, len(rows))
	for i := range rows {
		edges[i] = edge(cursor(rows[i]), &rows[i])
	}
	return rows, edges, info
}

func storyConnection(rows []db.Story, size int, withEdges bool) *model.StoryConnection {
	nodes, edges, info := connection(rows, size, withEdges, storyCursor, func(c string, n *db.Story) model.StoryEdge {
		return model.StoryEdge{Cursor: c, Node: n}
	})
	return &model.StoryConnection{Nodes: nodes, Edges: edges, PageInfo: info}
}

func generationConnection(rows []db.Generation, size int, withEdges bool) *model.StoryGenerationConnection {
	nodes, edges, info := connection(rows, size, withEdges, generationCursor, func(c string, n *db.Generation) model.StoryGenerationEdge {
		return model.StoryGenerationEdge{Cursor: c, Node: n}
	})
	return &model.StoryGenerationConnection{Nodes: nodes, Edges: edges, PageInfo: info}
}

func logConnection(rows []db.Log, size int, withEdges bool) *model.GenerationLogConnection {
	nodes, edges, info := connection(rows, size, withEdges, logCursor, func(c string, n *db.Log) model.GenerationLogEdge {
		return model.GenerationLogEdge{Cursor: c, Node: n}
	})
	return &model.GenerationLogConnection{Nodes: nodes, Edges: edges, PageInfo: info}
}
