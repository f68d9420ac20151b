#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every typed operation against the GLPI simulator over real HTTP, in GLPI 10 and 11 mode.

mod common;

use bytes::Bytes;
use glpi::{
    Actor, FieldMatch, GlpiError, ItemLink, NewContact, NewEntity, NewFollowup, NewSolution,
    NewTask, NewTicket, NewUser, Order, SearchQuery, SearchType, TicketStatus, TicketType,
    TicketUpdate, Upload,
};
use serde_json::{Value, json};
use sim_glpi::{ActorKind, GlpiVersion};

use common::{client_for, sim};

both_modes!(
    ticket_with_actors_is_read_back_as_stored,
    ticket_update_and_status,
    followups_solutions_tasks,
    users_create_and_find,
    contacts_create_and_find,
    entities_by_cnpj_and_create,
    an_entity_added_in_glpi_after_the_login_is_reached,
    phones_are_found_whatever_their_separators_and_past_the_first_page,
    documents_upload_download,
    dropdowns_by_name,
    tickets_changed_since_and_marker_search,
    a_second_with_more_tickets_than_a_page_is_read_whole,
    text_with_ampersands_and_brackets_is_found,
    generic_crud_and_search_pages,
);

async fn ticket_with_actors_is_read_back_as_stored(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let requester = sim.add_user(sim_glpi::NewUser {
        emails: vec!["maria.silva@example.com".into()],
        ..sim_glpi::NewUser::new("maria.silva")
    });
    let observer = sim.user_by_login("tech").unwrap().id;
    let content = "<p>Olá! A impressora não imprime &amp; mostra \"erro 0x50\".</p>\n<p>Ref: tb:chatwoot:1:482</p>";
    let ticket = glpi
        .create_ticket(&NewTicket {
            name: "Impressora <não> imprime & co".into(),
            content: content.into(),
            entity_id: Some(0),
            ticket_type: Some(TicketType::Request),
            urgency: Some(4),
            requesters: vec![
                Actor::user(requester as i64),
                Actor::email("cliente.sem.conta@example.org"),
            ],
            observers: vec![Actor::user(observer as i64)],
            ..Default::default()
        })
        .await
        .unwrap();
    // Read back, decoded once: exactly what was sent (GLPI 10 encodes, 11 stores raw).
    assert_eq!(ticket.content, content);
    assert_eq!(ticket.name, "Impressora <não> imprime & co");
    assert_eq!(ticket.urgency, 4);
    assert_eq!(ticket.ticket_type, 2);
    assert_eq!(ticket.status(), Some(TicketStatus::New));
    assert!(ticket.priority > 0, "priority computed by GLPI, read back");

    let stored = sim.ticket(ticket.id as u64).unwrap();
    assert_eq!(stored.content, content, "not double-encoded on write");
    assert_eq!(stored.name, "Impressora <não> imprime & co");
    let requesters: Vec<_> = stored
        .actors
        .iter()
        .filter(|a| a.kind == ActorKind::Requester)
        .collect();
    assert_eq!(requesters.len(), 2);
    assert!(requesters.iter().any(|a| a.users_id == requester));
    assert!(
        requesters
            .iter()
            .any(|a| a.users_id == 0 && a.alternative_email == "cliente.sem.conta@example.org")
    );
    assert!(
        stored
            .actors
            .iter()
            .any(|a| a.kind == ActorKind::Observer && a.users_id == observer)
    );

    let links = glpi.ticket_users(ticket.id).await.unwrap();
    assert!(links.iter().any(|l| l.users_id == 0
        && l.alternative_email == "cliente.sem.conta@example.org"
        && l.role == 1));
    assert_eq!(sim.sessions_opened(), 1);
}

async fn ticket_update_and_status(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let t = glpi
        .create_ticket(&NewTicket {
            name: "a".into(),
            content: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    glpi.update_ticket(
        t.id,
        &TicketUpdate {
            name: Some("renamed & <b>bold</b>".into()),
            urgency: Some(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let stored = sim.ticket(t.id as u64).unwrap();
    assert_eq!(stored.name, "renamed & <b>bold</b>");
    assert_eq!(stored.urgency, 5);
    assert_eq!(
        glpi.get_ticket(t.id).await.unwrap().name,
        "renamed & <b>bold</b>"
    );

    glpi.set_ticket_status(t.id, TicketStatus::Waiting)
        .await
        .unwrap();
    assert_eq!(sim.ticket(t.id as u64).unwrap().status, 4);
    glpi.set_ticket_status(t.id, TicketStatus::Closed)
        .await
        .unwrap();
    let closed = sim.ticket(t.id as u64).unwrap();
    assert_eq!(closed.status, 6);
    assert!(closed.closedate.is_some());
    // A closed ticket refuses a rename: the array/400 answer becomes a typed error.
    let err = glpi
        .update_ticket(
            t.id,
            &TicketUpdate {
                name: Some("nope".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, GlpiError::UpdateFailed { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(
        sim.ticket(t.id as u64).unwrap().name,
        "renamed & <b>bold</b>"
    );
}

async fn followups_solutions_tasks(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let chat = sim.add_request_type("Chatwoot") as i64;
    let requester = sim.add_user(sim_glpi::NewUser::new("maria")) as i64;
    let t = glpi
        .create_ticket(&NewTicket {
            name: "f".into(),
            content: "c".into(),
            requesters: vec![Actor::user(requester)],
            ..Default::default()
        })
        .await
        .unwrap();
    let public = glpi
        .add_followup(&NewFollowup {
            ticket_id: t.id,
            content: "<p>Primeira & resposta</p>".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let private = glpi
        .add_followup(&NewFollowup {
            ticket_id: t.id,
            content: "Nota interna".into(),
            is_private: true,
            request_type_id: Some(chat),
            ..Default::default()
        })
        .await
        .unwrap();
    let on_behalf = glpi
        .add_followup(&NewFollowup {
            ticket_id: t.id,
            content: "Mensagem do cliente".into(),
            author_id: Some(requester),
            request_type_id: Some(chat),
            ..Default::default()
        })
        .await
        .unwrap();
    let stored = sim.followups(t.id as u64);
    assert_eq!(stored.len(), 3);
    let by_id = |id: i64| stored.iter().find(|f| f.id == id as u64).unwrap();
    assert_eq!(by_id(public).content, "<p>Primeira & resposta</p>");
    assert!(!by_id(public).is_private);
    assert!(by_id(private).is_private);
    assert_eq!(by_id(private).requesttypes_id, chat as u64);
    assert_eq!(by_id(on_behalf).users_id, requester as u64);

    let listed = glpi.followups(t.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![public, private, on_behalf]
    );
    assert_eq!(listed[0].content, "<p>Primeira & resposta</p>");

    let task = glpi
        .add_task(&NewTask {
            ticket_id: t.id,
            content: "Trocar cabo".into(),
            state: Some(1),
            duration_secs: Some(1800),
            ..Default::default()
        })
        .await
        .unwrap();
    let tasks = glpi.tasks(t.id).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        (tasks[0].id, tasks[0].actiontime, tasks[0].content.as_str()),
        (task, 1800, "Trocar cabo")
    );

    let solution = glpi
        .add_solution(&NewSolution {
            ticket_id: t.id,
            content: "<p>Driver reinstalado.</p>".into(),
            solution_type_id: None,
        })
        .await
        .unwrap();
    assert_eq!(sim.ticket(t.id as u64).unwrap().status, 5);
    let solutions = glpi.solutions(t.id).await.unwrap();
    assert_eq!(solutions.len(), 1);
    assert_eq!(
        (solutions[0].id, solutions[0].content.as_str()),
        (solution, "<p>Driver reinstalado.</p>")
    );
    let err = glpi
        .add_solution(&NewSolution {
            ticket_id: t.id,
            content: "again".into(),
            solution_type_id: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, GlpiError::AddFailed { ref message } if message.contains("already solved")),
        "{err:?}"
    );
    assert_eq!(sim.solutions(t.id as u64).len(), 1);
}

async fn users_create_and_find(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let id = glpi
        .create_user(&NewUser {
            login: "maria.silva".into(),
            realname: Some("Silva".into()),
            firstname: Some("Maria".into()),
            phone: Some("+55 11 3333-4444".into()),
            mobile: Some("+55 11 98765-4321".into()),
            emails: vec![
                "maria.silva@example.com".into(),
                "maria@acme.example".into(),
            ],
            profile_id: Some(1),
            entity_id: Some(0),
            password: Some("S3cret!pass".to_owned().into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let stored = sim.user(id as u64).unwrap();
    assert_eq!(stored.login, "maria.silva");
    assert_eq!(
        stored.emails,
        vec!["maria.silva@example.com", "maria@acme.example"]
    );

    let user = glpi.get_user(id).await.unwrap();
    assert_eq!(
        (user.realname.as_str(), user.mobile.as_str()),
        ("Silva", "+55 11 98765-4321")
    );
    let emails = glpi.user_emails(id).await.unwrap();
    assert_eq!(emails.len(), 2);
    assert!(
        emails
            .iter()
            .any(|e| e.is_default && e.email == "maria.silva@example.com")
    );

    let by_email = glpi
        .find_users_by_email("Maria.Silva@Example.com")
        .await
        .unwrap();
    assert_eq!(by_email.iter().map(|u| u.id).collect::<Vec<_>>(), vec![id]);
    assert!(
        glpi.find_users_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_empty()
    );
    // Digits only, E.164 and formatted all find the free-text phone.
    for phone in ["1133334444", "+551133334444", "(11) 3333-4444"] {
        let hits = glpi.find_users_by_phone(phone).await.unwrap();
        assert_eq!(
            hits.iter().map(|u| u.id).collect::<Vec<_>>(),
            vec![id],
            "{phone}"
        );
    }
    assert_eq!(
        glpi.find_users_by_phone("+5511987654321")
            .await
            .unwrap()
            .len(),
        1,
        "mobile is a phone field too"
    );
    assert_eq!(
        glpi.find_users_by_mobile("11987654321").await.unwrap()[0].id,
        id
    );
    assert!(
        glpi.find_users_by_mobile("1133334444")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        glpi.find_users_by_phone("+55 11 0000-4444")
            .await
            .unwrap()
            .is_empty(),
        "same last digits, other number"
    );

    let dup = glpi
        .create_user(&NewUser {
            login: "maria.silva".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(dup, GlpiError::AddFailed { ref message } if message.contains("already exists")),
        "{dup:?}"
    );
}

async fn contacts_create_and_find(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let id = glpi
        .create_contact(&NewContact {
            name: "Souza".into(),
            firstname: Some("João".into()),
            email: Some("joao.souza@cliente.example".into()),
            phone: Some("+55 21 2222-3333".into()),
            mobile: Some("+55 21 99999-8888".into()),
            entity_id: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    let stored = sim
        .contacts()
        .into_iter()
        .find(|c| c.id == id as u64)
        .unwrap();
    assert_eq!(stored.email.as_deref(), Some("joao.souza@cliente.example"));
    assert_eq!(glpi.get_contact(id).await.unwrap().firstname, "João");
    assert_eq!(
        glpi.find_contacts_by_phone("2122223333").await.unwrap()[0].id,
        id
    );
    assert_eq!(
        glpi.find_contacts_by_phone("+5521999998888").await.unwrap()[0].id,
        id
    );
    assert_eq!(
        glpi.find_contacts_by_email("JOAO.SOUZA@cliente.example")
            .await
            .unwrap()[0]
            .id,
        id
    );
    assert!(
        glpi.find_contacts_by_email("x@y.z")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn entities_by_cnpj_and_create(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let acme = sim.add_entity("ACME Ltda", 0, Some("12.345.678/0001-90")) as i64;
    let beta = sim.add_entity("Beta SA", 0, Some("98765432000110")) as i64;
    for query in ["12345678000190", "12.345.678/0001-90", "12 345 678 0001 90"] {
        let hits = glpi
            .find_entities_by_field(76666, query, FieldMatch::Digits)
            .await
            .unwrap();
        assert_eq!(
            hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![acme],
            "{query}"
        );
        assert_eq!(hits[0].value, "12.345.678/0001-90");
    }
    // Stored digits-only, searched formatted.
    let hits = glpi
        .find_entities_by_field(76666, "98.765.432/0001-10", FieldMatch::Digits)
        .await
        .unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![beta]);
    assert!(
        glpi.find_entities_by_field(76666, "11111111000111", FieldMatch::Digits)
            .await
            .unwrap()
            .is_empty()
    );
    let exact = glpi
        .find_entities_by_field(76666, "12.345.678/0001-90", FieldMatch::Exact)
        .await
        .unwrap();
    assert_eq!(exact.len(), 1);

    let entity = glpi.get_entity(acme).await.unwrap();
    assert_eq!(entity.name, "ACME Ltda");
    assert_eq!(entity.completename, "Root entity > ACME Ltda");

    // An entity created by this session is visible right away (the client refreshes).
    let created = glpi
        .create_entity(&NewEntity {
            name: "Gamma & Filhos".into(),
            parent_id: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    let gamma = glpi.get_entity(created).await.unwrap();
    assert_eq!(gamma.name, "Gamma & Filhos");
    assert!(
        sim.entities()
            .iter()
            .any(|e| e.id == created as u64 && e.parent == Some(0))
    );
}

async fn an_entity_added_in_glpi_after_the_login_is_reached(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let acme = sim.add_entity("ACME Ltda", 0, Some("12.345.678/0001-90")) as i64;
    glpi.get_entity(acme).await.unwrap(); // the session opens now
    // Added by someone in GLPI's UI: not among the open session's entities.
    let beta = sim.add_entity("Beta SA", 0, Some("98.765.432/0001-10")) as i64;
    let found = glpi
        .find_entities_by_field(76666, "98765432000110", FieldMatch::Digits)
        .await
        .unwrap();
    assert_eq!(found.iter().map(|h| h.id).collect::<Vec<_>>(), vec![beta]);
    let ticket = glpi
        .create_ticket(&NewTicket {
            name: "Impressora".into(),
            content: "<p>Sem papel</p>".into(),
            entity_id: Some(beta),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ticket.entities_id, beta);
    assert_eq!(
        sim.ticket(ticket.id as u64).unwrap().entities_id,
        beta as u64
    );
    assert_eq!(glpi.get_entity(beta).await.unwrap().name, "Beta SA");
    assert_eq!(sim.sessions_opened(), 1, "the same session throughout");

    // A refusal with another cause is not cured by the refresh: it comes back.
    let before = sim.tickets().len();
    let refused = glpi
        .create_ticket(&NewTicket {
            name: "Nowhere".into(),
            content: "x".into(),
            entity_id: Some(9_999),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(refused, GlpiError::AddFailed { .. }),
        "{refused:?}"
    );
    assert_eq!(sim.tickets().len(), before);
}

async fn phones_are_found_whatever_their_separators_and_past_the_first_page(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let french = sim.add_user(sim_glpi::NewUser {
        mobile: Some("+33 6 12 34 56 78".into()),
        ..sim_glpi::NewUser::new("jean")
    }) as i64;
    let found = glpi.find_users_by_mobile("+33612345678").await.unwrap();
    assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), vec![french]);

    // 250 numbers share the last eight digits; the one asked for is the last.
    let mut last = 0;
    for n in 0..250 {
        last = sim.add_user(sim_glpi::NewUser {
            mobile: Some(format!("+{} 9 8765-4321", 100 + n)),
            ..sim_glpi::NewUser::new(&format!("u{n}"))
        }) as i64;
    }
    let found = glpi.find_users_by_mobile("+349 987654321").await.unwrap();
    assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), vec![last]);
}

async fn documents_upload_download(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let t = glpi
        .create_ticket(&NewTicket {
            name: "Ticket com anexo".into(),
            content: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let bytes = Bytes::from_static(b"line 1: paper jam\nline 2: erro 0x50\n");
    let doc = glpi
        .upload_document(&Upload {
            entity_id: None,
            file_name: "printer.txt".into(),
            mime: "text/plain".into(),
            data: bytes.clone(),
            name: Some("Log".into()),
            link: Some(ItemLink::ticket(t.id)),
        })
        .await
        .unwrap();
    let stored = sim
        .documents()
        .into_iter()
        .find(|d| d.id == doc as u64)
        .unwrap();
    assert_eq!(stored.content.as_deref(), Some(&bytes[..]));
    assert!(
        stored
            .linked_to
            .contains(&("Ticket".to_owned(), t.id as u64))
    );
    let links = glpi.document_links(&ItemLink::ticket(t.id)).await.unwrap();
    assert!(links.iter().any(|l| l.documents_id == doc));
    // The same document linked to a second ticket.
    let t2 = glpi
        .create_ticket(&NewTicket {
            name: "second".into(),
            content: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    glpi.link_document(doc, &ItemLink::ticket(t2.id))
        .await
        .unwrap();
    let stored = sim
        .documents()
        .into_iter()
        .find(|d| d.id == doc as u64)
        .unwrap();
    assert!(
        stored
            .linked_to
            .contains(&("Ticket".to_owned(), t2.id as u64))
    );

    let file = glpi.download_document(doc).await.unwrap();
    assert_eq!(file.data, bytes);
    assert_eq!(file.file_name.as_deref(), Some("printer.txt"));
    assert_eq!(
        glpi.get_document(doc).await.unwrap().filename,
        "printer.txt"
    );

    // Attached to a followup.
    let fu = glpi
        .add_followup(&NewFollowup {
            ticket_id: t.id,
            content: "see attachment".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let doc2 = glpi
        .upload_document(&Upload {
            entity_id: None,
            file_name: "foto.png".into(),
            mime: "image/png".into(),
            data: Bytes::from_static(b"\x89PNG\r\n\x1a\nfake"),
            name: None,
            link: Some(ItemLink::followup(fu)),
        })
        .await
        .unwrap();
    let stored = sim
        .documents()
        .into_iter()
        .find(|d| d.id == doc2 as u64)
        .unwrap();
    assert!(
        stored
            .linked_to
            .contains(&("ITILFollowup".to_owned(), fu as u64))
    );

    // A refused file type is an error, linked or not (201 with upload_result error).
    for link in [Some(ItemLink::ticket(t.id)), None] {
        let before = sim
            .documents()
            .iter()
            .filter(|d| d.content.is_some())
            .count();
        let err = glpi
            .upload_document(&Upload {
                entity_id: None,
                file_name: "printer.log".into(),
                mime: "text/plain".into(),
                data: Bytes::from_static(b"x"),
                name: None,
                link,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, GlpiError::UploadRejected { .. }), "{err:?}");
        assert_eq!(
            sim.documents()
                .iter()
                .filter(|d| d.content.is_some())
                .count(),
            before
        );
    }
    assert!(
        sim.documents()
            .iter()
            .all(|d| d.filename.as_deref() != Some("printer.log") || d.content.is_some())
    );
}

async fn dropdowns_by_name(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let cat = sim.add_category("Atendimento") as i64;
    let rt = sim.add_request_type("Chatwoot") as i64;
    assert_eq!(glpi.find_category("atendimento").await.unwrap(), Some(cat));
    assert_eq!(glpi.find_category("Nope").await.unwrap(), None);
    assert_eq!(glpi.find_request_type("Chatwoot").await.unwrap(), Some(rt));
    assert_eq!(glpi.find_request_type("Phone").await.unwrap(), Some(3));
    assert_eq!(glpi.find_request_type("Fax machine").await.unwrap(), None);
}

/// GLPI 10 stores `&`, `<`, `>` entity-encoded and compares a search value as it comes:
/// the client sends values the way the text is stored (GLPI 11 stores raw text).
async fn text_with_ampersands_and_brackets_is_found(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let category = sim.add_category("Redes & Internet") as i64;
    let found = glpi.find_categories("Redes & Internet").await.unwrap();
    assert_eq!(
        found.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![category]
    );
    let ticket = glpi
        .create_ticket(&NewTicket {
            name: "Link".into(),
            content: "<p>Ref: tb:x & <y></p>".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let hits = glpi.find_tickets_by_content("tb:x & <y>").await.unwrap();
    assert_eq!(
        hits.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ticket.id]
    );
}

/// GLPI stamps every row one request writes with the same second (massive actions, the
/// autoclose cron): a second can hold more tickets than a page, and a poller whose cursor
/// is the newest `date_mod` seen must still get all of them and what changed after.
async fn a_second_with_more_tickets_than_a_page_is_read_whole(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let crowd: Vec<u64> = (0..600)
        .map(|i| sim.add_ticket(&format!("bulk {i}"), 0))
        .collect();
    let second = sim.touch_tickets(&crowd);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let later = sim.add_ticket("changed a moment later", 0);
    let mut cursor = second.clone();
    let mut seen = std::collections::BTreeSet::new();
    for _poll in 0..3 {
        let (rows, _partial) = glpi.tickets_changed_since(&cursor, 500).await.unwrap();
        for row in &rows {
            seen.insert(row.id as u64);
            if row.date_mod > cursor {
                cursor = row.date_mod.clone();
            }
        }
    }
    for id in crowd.iter().chain([&later]) {
        assert!(seen.contains(id), "ticket {id} never returned");
    }
    assert!(cursor > second, "the cursor moved past the crowded second");
}

async fn tickets_changed_since_and_marker_search(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let requester = sim.add_user(sim_glpi::NewUser::new("maria")) as i64;
    let mut ids = Vec::new();
    for i in 0..3 {
        let t = glpi
            .create_ticket(&NewTicket {
                name: format!("t{i}"),
                content: format!("<p>Ref: tb:chatwoot:1:{i}</p>"),
                requesters: vec![Actor::user(requester)],
                ..Default::default()
            })
            .await
            .unwrap();
        ids.push(t);
    }
    let since = ids[0].date_mod.clone().unwrap();
    sim.reset_counters();
    let (changed, partial) = glpi.tickets_changed_since(&since, 100).await.unwrap();
    assert_eq!(sim.calls_total(), 1, "one request per poll");
    assert!(!partial);
    for t in &ids {
        assert!(
            changed.iter().any(|c| c.id == t.id),
            "ticket {} changed at {since}",
            t.id
        );
    }
    let (none, _) = glpi
        .tickets_changed_since("2099-01-01 00:00:00", 100)
        .await
        .unwrap();
    assert!(none.is_empty());
    // Three tickets changed later, one second each: a page of two leaves one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut later = Vec::new();
    for (i, t) in ids.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        }
        later.push(sim.touch_tickets(&[t.id as u64]));
    }
    let (page, partial) = glpi.tickets_changed_since(&later[0], 2).await.unwrap();
    assert_eq!(page.len(), 2);
    assert!(partial, "more rows than the limit");

    let found = glpi
        .find_tickets_by_content("tb:chatwoot:1:2")
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[2].id]
    );
    assert!(
        glpi.find_tickets_by_content("tb:chatwoot:9:9")
            .await
            .unwrap()
            .is_empty()
    );

    let mine = glpi.tickets_of_requester(requester, false).await.unwrap();
    assert_eq!(mine.len(), 3);
    glpi.set_ticket_status(ids[1].id, TicketStatus::Closed)
        .await
        .unwrap();
    let open = glpi.tickets_of_requester(requester, true).await.unwrap();
    assert_eq!(open.len(), 2);
    assert!(open.iter().all(|t| t.id != ids[1].id));
}

async fn generic_crud_and_search_pages(mode: GlpiVersion) {
    let sim = sim(mode).await;
    let glpi = client_for(&sim);
    let id = glpi
        .create_item("RequestType", &json!({"name": "WhatsApp", "is_active": 1}))
        .await
        .unwrap();
    let row: Value = glpi.get_item("RequestType", id).await.unwrap();
    assert_eq!(row["name"], "WhatsApp");
    glpi.update_item("RequestType", id, &json!({"name": "WhatsApp & SMS"}))
        .await
        .unwrap();
    assert_eq!(
        sim.item("RequestType", id as u64)
            .map(|v| v["name"].clone()),
        Some(match mode {
            GlpiVersion::V10 => json!("WhatsApp &#38; SMS"),
            GlpiVersion::V11 => json!("WhatsApp & SMS"),
        })
    );
    let read: Value = glpi.get_item("RequestType", id).await.unwrap();
    assert_eq!(read["name"], "WhatsApp & SMS");
    glpi.delete_item("RequestType", id, true).await.unwrap();
    assert!(sim.item("RequestType", id as u64).is_none());
    let err = glpi.get_item::<Value>("RequestType", id).await.unwrap_err();
    assert!(matches!(err, GlpiError::NotFound { .. }), "{err:?}");
    let err = glpi
        .delete_item("Ticket", 999_999, false)
        .await
        .unwrap_err();
    assert!(matches!(err, GlpiError::DeleteFailed { .. }), "{err:?}");

    // Soft delete keeps the ticket readable.
    let t = glpi
        .create_ticket(&NewTicket {
            name: "x".into(),
            content: "y".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    glpi.delete_item("Ticket", t.id, false).await.unwrap();
    assert!(glpi.get_ticket(t.id).await.unwrap().is_deleted);

    for i in 0..3 {
        glpi.create_ticket(&NewTicket {
            name: format!("p{i}"),
            content: "y".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let page = glpi
        .search(
            &SearchQuery::new("Ticket")
                .display(&[1, 12])
                .range(0, 0)
                .sort(2, Order::Asc),
        )
        .await
        .unwrap();
    assert!(page.partial, "206 partial page");
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.total, 3);
    let empty = glpi
        .search(&SearchQuery::new("Ticket").and(1, SearchType::Contains, "no such name at all"))
        .await
        .unwrap();
    assert_eq!(
        (empty.total, empty.rows.len(), empty.partial),
        (0, 0, false)
    );
    let all: Vec<Value> = glpi.list_items("RequestType").await.unwrap();
    assert!(all.len() >= 6);
    let phone: Vec<Value> = glpi
        .list_items_matching("RequestType", "name", "Phone")
        .await
        .unwrap();
    assert_eq!(
        phone.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        vec![json!(3)]
    );
    // More items than one page (the sim's default list_limit is 20): all are returned.
    for i in 0..25 {
        glpi.create_item("RequestType", &json!({"name": format!("rt{i}")}))
            .await
            .unwrap();
    }
    let all: Vec<Value> = glpi.list_items("RequestType").await.unwrap();
    assert_eq!(all.len(), sim.items("RequestType").len());
}
