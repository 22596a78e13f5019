package app

import "github.com/narrate/narrate/db"

// DemoStories are loaded into an empty catalogue of the local development
// database: short public-domain fables (Aesop, in the 1867 Townsend
// translation), long enough to be narrated in a few chunks.
var DemoStories = []db.NewStory{
	{
		Title: "The Fox and the Grapes",
		Slug:  "the-fox-and-the-grapes",
		Content: "A famished fox saw some clusters of ripe black grapes hanging from a trellised vine. " +
			"She resorted to all her tricks to get at them, but wearied herself in vain, for she could not reach them. " +
			"At last she turned away, hiding her disappointment and saying: \"The grapes are sour, and not ripe as I thought.\"",
	},
	{
		Title: "The Tortoise and the Hare",
		Slug:  "the-tortoise-and-the-hare",
		Content: "A hare one day ridiculed the short feet and slow pace of the tortoise, who replied, laughing: " +
			"\"Though you be swift as the wind, I will beat you in a race.\" The hare, believing her assertion to be simply impossible, assented to the proposal. " +
			"They agreed that the fox should choose the course and fix the goal. On the day appointed for the race the two started together. " +
			"The tortoise never for a moment stopped, but went on with a slow but steady pace straight to the end of the course. " +
			"The hare, lying down by the wayside, fell fast asleep. At last waking up, and moving as fast as he could, he saw the tortoise had reached the goal, " +
			"and was comfortably dozing after her fatigue. Slow but steady wins the race.",
	},
	{
		Title: "The Lion and the Mouse",
		Slug:  "the-lion-and-the-mouse",
		Content: "A lion was awakened from sleep by a mouse running over his face. Rising up angrily, he caught him and was about to kill him, " +
			"when the mouse piteously entreated, saying: \"If you would only spare my life, I would be sure to repay your kindness.\" " +
			"The lion laughed and let him go. It happened shortly after this that the lion was caught by some hunters, who bound him by strong ropes to the ground. " +
			"The mouse, recognizing his roar, came and gnawed the rope with his teeth, and set him free, exclaiming: " +
			"\"You ridiculed the idea of my ever being able to help you, expecting to receive from me any repayment of your favor; " +
			"now you know that it is possible for even a mouse to confer benefits on a lion.\"",
	},
	{
		Title: "The Crow and the Pitcher",
		Slug:  "the-crow-and-the-pitcher",
		Content: "A crow perishing with thirst saw a pitcher, and hoping to find water, flew to it with delight. " +
			"When he reached it, he discovered to his grief that it contained so little water that he could not possibly get at it. " +
			"He tried everything he could think of to reach the water, but all his efforts were in vain. " +
			"At last he collected as many stones as he could carry and dropped them one by one with his beak into the pitcher, " +
			"until he brought the water within his reach and thus saved his life. Necessity is the mother of invention.",
	},
	{
		Title: "The North Wind and the Sun",
		Slug:  "the-north-wind-and-the-sun",
		Content: "The North Wind and the Sun disputed as to which was the most powerful, and agreed that he should be declared the victor " +
			"who could first strip a wayfaring man of his clothes. The North Wind first tried his power and blew with all his might, " +
			"but the keener his blasts, the closer the traveler wrapped his cloak around him, until at last, resigning all hope of victory, " +
			"the Wind called upon the Sun to see what he could do. The Sun suddenly shone out with all his warmth. " +
			"The traveler no sooner felt his genial rays than he took off one garment after another, and at last, fairly overcome with heat, " +
			"undressed and bathed in a stream that lay in his path. Persuasion is better than force.",
	},
}
