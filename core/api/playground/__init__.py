"""The playground: a static page at ``/playground`` that draws a flow, talks to it and replays
conversations, through the public REST API only (it carries no data of its own)."""
