package graph

import (
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/graph/model"
)

// connection trims rows fetched with one extra row to the page size and
// builds the edges and page info of a Relay connection from them.
func connection[T, E any](rows []T, size int, cursor func(T) string, edge func(string, *T) E) ([]T, []E, *model.PageInfo) {
	hasNext := len(rows) > size
	if hasNext {
		rows = rows[:size]
	}
	edges := make([]E, len(rows))
	info := &model.PageInfo{HasNextPage: hasNext}
	for i := range rows {
		c := cursor(rows[i])
		edges[i] = edge(c, &rows[i])
		info.EndCursor = &c
	}
	return rows, edges, info
}

func storyConnection(rows []db.Story, size int) *model.StoryConnection {
	nodes, edges, info := connection(rows, size, storyCursor, func(c string, n *db.Story) model.StoryEdge {
		return model.StoryEdge{Cursor: c, Node: n}
	})
	return &model.StoryConnection{Nodes: nodes, Edges: edges, PageInfo: info}
}

func generationConnection(rows []db.Generation, size int) *model.StoryGenerationConnection {
	nodes, edges, info := connection(rows, size, generationCursor, func(c string, n *db.Generation) model.StoryGenerationEdge {
		return model.StoryGenerationEdge{Cursor: c, Node: n}
	})
	return &model.StoryGenerationConnection{Nodes: nodes, Edges: edges, PageInfo: info}
}

func logConnection(rows []db.Log, size int) *model.GenerationLogConnection {
	nodes, edges, info := connection(rows, size, logCursor, func(c string, n *db.Log) model.GenerationLogEdge {
		return model.GenerationLogEdge{Cursor: c, Node: n}
	})
	return &model.GenerationLogConnection{Nodes: nodes, Edges: edges, PageInfo: info}
}
